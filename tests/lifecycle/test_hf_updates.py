"""model:outdated / model:update / pins of Hugging Face models against olah (a real Hub stand-in):
a new commit on the test repo, the cache checked with huggingface_hub's scan_cache_dir each time."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.fixtures.models import fake_gguf_with_file_type
from tests.fixtures.olah import Olah, unique_repo_id
from tests.helpers import hanzo_json
from tests.huggingface.conftest import scanned
from tests.huggingface.hubserver import lfs_pointer


@pytest.fixture(autouse=True)
def endpoint(olah: Olah, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HF_ENDPOINT", olah.endpoint)
    monkeypatch.setenv("HANZO_PLUGINS", "huggingface")
    return olah.endpoint


def commit(olah: Olah, repo_id: str, gguf: Path, readme: str) -> str:
    """Commit the GGUF (as git-lfs, its object beside) and a README kept in git."""
    data = gguf.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    head = olah.make_repo(repo_id, {"Tiny-Q8_0.gguf": lfs_pointer(data), "README.md": readme.encode()})
    obj = olah.mirrors / "models" / repo_id / ".git" / "lfs" / "objects" / sha[:2] / sha[2:4] / sha
    obj.parent.mkdir(parents=True, exist_ok=True)
    obj.write_bytes(data)
    return head


def cache(root: Path) -> Path:
    return root / "hf" / "hub"


def test_a_new_commit_is_outdated_and_update_moves_main(olah: Olah, tmp_path: Path) -> None:
    repo_id = unique_repo_id("hanzo-lifecycle")
    v1_gguf = fake_gguf_with_file_type(tmp_path / "v1.gguf", file_type="Q8_0", n_embd=32)
    v1 = commit(olah, repo_id, v1_gguf, "# v1\n")
    pulled = hanzo_json("model:pull", f"hf:{repo_id}:Q8_0", "--json")
    assert pulled["details"]["revision"] == v1

    [row] = hanzo_json("model:outdated", "--json")
    assert (row["name"], row["status"], row["installed"], row["latest"]) == (
        f"{repo_id}:Q8_0",
        "up-to-date",
        v1,
        v1,
    )

    # A commit that changes only the README: the model's file is unchanged, nothing to download.
    v2 = commit(olah, repo_id, v1_gguf, "# v2\n")
    [row] = hanzo_json("model:outdated", "--json")
    assert (row["status"], row["latest"], row["fetch_bytes"]) == ("outdated", v2, 0)
    blob = Path(pulled["files"][0]["path"]).resolve()
    inode = blob.stat().st_ino
    [result] = hanzo_json("model:update", "--all", "--json")
    assert (result["action"], result["now"]) == ("updated", v2)
    assert blob.stat().st_ino == inode  # the same verified blob, linked into the new snapshot
    view = scanned(cache(tmp_path))  # asserts scan_cache_dir has no warnings
    assert {(r, c) for r, c, _ in view} == {(repo_id, v2)}  # the old revision is gone

    # A commit that changes the weights: only that file is downloaded; the old blob goes.
    v3_gguf = fake_gguf_with_file_type(tmp_path / "v3.gguf", file_type="Q8_0", n_embd=64)
    v3 = commit(olah, repo_id, v3_gguf, "# v2\n")
    [row] = hanzo_json("model:outdated", "--json")
    assert (row["status"], row["latest"], row["fetch_bytes"]) == ("outdated", v3, v3_gguf.stat().st_size)
    [result] = hanzo_json("model:update", f"hf:{repo_id}:Q8_0", "--json")
    assert result["now"] == v3
    assert scanned(cache(tmp_path)) == {(repo_id, v3, "Tiny-Q8_0.gguf"): v3_gguf.stat().st_size}
    assert not blob.exists()
    [listed] = hanzo_json("model:list", "--json")
    assert Path(listed["path"]).read_bytes() == v3_gguf.read_bytes()
    [row] = hanzo_json("model:outdated", "--json")
    assert row["status"] == "up-to-date"
    pins = cache(tmp_path) / ".locks" / "hanzo-pins.json"  # the update's pull by commit is no user pin
    assert not pins.exists() or v3 not in pins.read_text()


def test_a_commit_pin_never_moves(olah: Olah, tmp_path: Path) -> None:
    repo_id = unique_repo_id("hanzo-lifecycle")
    v1_gguf = fake_gguf_with_file_type(tmp_path / "v1.gguf", file_type="Q8_0", n_embd=32)
    v1 = commit(olah, repo_id, v1_gguf, "# v1\n")
    v2 = commit(olah, repo_id, fake_gguf_with_file_type(tmp_path / "v2.gguf", file_type="Q8_0"), "# v2\n")
    pinned = hanzo_json("model:pull", f"hf:{repo_id}@{v1}:Q8_0", "--json")
    assert pinned["name"] == f"{repo_id}@{v1}:Q8_0"
    hanzo_json("model:pull", f"hf:{repo_id}:Q8_0", "--json")
    rows = {r["name"]: r for r in hanzo_json("model:outdated", "--json")}
    assert rows[f"{repo_id}@{v1}:Q8_0"]["status"] == "pinned"
    assert rows[f"{repo_id}:Q8_0"]["status"] == "up-to-date"
    results = hanzo_json("model:update", "--all", "--json")
    assert sorted(r["action"] for r in results) == ["skipped", "skipped"]
    assert {c for _, c, _ in scanned(cache(tmp_path))} == {v1, v2}
