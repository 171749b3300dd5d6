"""model:delete: the model's files and emptied folders go; nothing while LM Studio has it loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
from hanzo_lmstudio.provider import LMStudioProvider

from hanzo_cli.errors import HanzoError, NotFoundError
from tests.helpers import assert_one_line_error, run_hanzo
from tests.lmstudio.conftest import LMStudioServer, put

REPO = "Qwen/Qwen3-Embedding-0.6B-GGUF"


@pytest.fixture
def two_quants(lms_dir: Path, tiny_qwen3_gguf: Path) -> Path:
    put(lms_dir, f"{REPO}/Qwen3-Embedding-0.6B-Q8_0.gguf", tiny_qwen3_gguf)
    put(lms_dir, f"{REPO}/Qwen3-Embedding-0.6B-f16.gguf", tiny_qwen3_gguf)
    put(lms_dir, f"{REPO}/mmproj-f16.gguf", tiny_qwen3_gguf)
    return lms_dir / REPO


def test_delete_keeps_what_other_models_share_then_cleans_up(lms_dir: Path, two_quants: Path) -> None:
    (two_quants / "Qwen3-Embedding-0.6B-Q8_0.gguf.partial").write_bytes(b"left by an interrupted pull")
    (two_quants / "Qwen3-Embedding-0.6B-Q8_0.gguf.partial.json").write_text("{}")
    p = LMStudioProvider()
    removed = p.delete(f"{REPO}:Q8_0")
    assert removed.name == f"{REPO}/Qwen3-Embedding-0.6B-Q8_0.gguf"
    # the projector stays for the f16 model
    assert sorted(f.name for f in two_quants.iterdir()) == [
        "Qwen3-Embedding-0.6B-f16.gguf",
        "mmproj-f16.gguf",
    ]
    p.delete(f"{REPO}/Qwen3-Embedding-0.6B-f16.gguf")
    assert not (lms_dir / "Qwen").exists()  # repo and publisher folders were left empty
    assert lms_dir.is_dir()  # the models folder itself stays


def test_delete_leaves_other_files_and_repos(lms_dir: Path, two_quants: Path, tiny_llama_gguf: Path) -> None:
    put(lms_dir, "Qwen/Other-GGUF/Other-Q4_0.gguf", tiny_llama_gguf)
    (two_quants / "README.md").write_text("notes")
    p = LMStudioProvider()
    p.delete(f"{REPO}:Q8_0")
    p.delete(f"{REPO}:F16")
    assert sorted(f.name for f in two_quants.iterdir()) == ["README.md"]
    assert (lms_dir / "Qwen" / "Other-GGUF" / "Other-Q4_0.gguf").exists()


def test_delete_split_model(lms_dir: Path, tiny_llama_gguf: Path) -> None:
    for i in (1, 2, 3):
        put(lms_dir, f"org/big/Big-Q4_K_M-0000{i}-of-00003.gguf", tiny_llama_gguf)
    LMStudioProvider().delete("org/big:Q4_K_M")
    assert not (lms_dir / "org").exists()


def test_delete_refused_while_loaded(two_quants: Path, lmstudio: LMStudioServer) -> None:
    lmstudio.add("qwen3-embedding-0.6b@q8_0", state="loaded", publisher="Qwen", quantization="Q8_0")
    lmstudio.add("qwen3-embedding-0.6b@f16", publisher="Qwen", quantization="F16")
    proc = run_hanzo("model:delete", "--yes", f"lms:{REPO}:Q8_0")
    assert_one_line_error(proc, "loaded in LM Studio", "lms unload qwen3-embedding-0.6b@q8_0")
    assert (two_quants / "Qwen3-Embedding-0.6B-Q8_0.gguf").exists()
    # the other quant is not loaded: it goes
    proc = run_hanzo("model:delete", "--yes", f"lms:{REPO}:F16")
    assert proc.returncode == 0, proc.stderr
    assert not (two_quants / "Qwen3-Embedding-0.6B-f16.gguf").exists()
    # once LM Studio unloads it, it can go too
    lmstudio.models[0]["state"] = "not-loaded"
    assert run_hanzo("model:delete", "--yes", f"lms:{REPO}:Q8_0").returncode == 0
    assert not two_quants.exists()


def test_delete_errors(two_quants: Path) -> None:
    p = LMStudioProvider()
    with pytest.raises(NotFoundError):
        p.delete(f"{REPO}:Q2_K")
    with pytest.raises(HanzoError, match="several"):
        p.delete(REPO)
    with pytest.raises(HanzoError):
        p.delete("../../etc/passwd.gguf")
    assert_one_line_error(run_hanzo("model:delete", "--yes", "lms:nobody/nothing:Q8_0"), "not found")
    assert len(list(two_quants.iterdir())) == 3


def test_delete_never_follows_links_out(lms_dir: Path, tmp_path: Path, tiny_llama_gguf: Path) -> None:
    outside = put(tmp_path / "precious", "repo/keep-Q8_0.gguf", tiny_llama_gguf)
    (lms_dir / "org").mkdir()
    (lms_dir / "org" / "repo").symlink_to(outside.parent)
    with pytest.raises(HanzoError, match="outside"):
        LMStudioProvider().delete("org/repo:Q8_0")
    assert outside.exists()
