"""model:pull --provider lmstudio: from the Hub (the Hugging Face tests' loopback Hub, and olah)
straight into LM Studio's folder, through the Hugging Face plugin's resolution and hanzo's
downloader."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hanzo_lmstudio.names import ModelName
from hanzo_lmstudio.provider import LMStudioProvider, _existing_folder

from hanzo_cli.errors import HanzoError, NotFoundError
from hanzo_cli.providers import ModelInfo, PullOptions
from tests.fixtures.olah import Olah, unique_repo_id
from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo
from tests.huggingface.hubserver import FakeHub
from tests.lmstudio.conftest import LMStudioServer

REPO = "Qwen/Qwen3-Embedding-0.6B-GGUF"
Q8 = "Qwen3-Embedding-0.6B-Q8_0.gguf"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pull(name: str, **extra: object) -> ModelInfo:
    """The provider's pull in-process (the tests that use run_hanzo cover the command line)."""
    return LMStudioProvider().pull(name, PullOptions(quiet=True, extra=extra))


@pytest.fixture
def gguf_bytes(tiny_qwen3_gguf: Path) -> bytes:
    return tiny_qwen3_gguf.read_bytes()


@pytest.fixture
def qwen_repo(hub: FakeHub, gguf_bytes: bytes) -> str:
    files = {
        "README.md": b"# Qwen3 Embedding GGUF\n",
        Q8: gguf_bytes,
        "Qwen3-Embedding-0.6B-f16.gguf": gguf_bytes + b"\0",
    }
    return hub.add_repo(REPO, files)


def test_pull_lands_in_lm_studio_layout(
    lms_dir: Path, hub: FakeHub, qwen_repo: str, gguf_bytes: bytes, isolated_env: Path
) -> None:
    pulled = hanzo_json("model:pull", "--provider", "lmstudio", f"{REPO}:Q8_0", "--json")
    dest = lms_dir / REPO / Q8
    assert dest.read_bytes() == gguf_bytes
    assert pulled["provider"] == "lmstudio"
    assert pulled["name"] == f"{REPO}/{Q8}"
    assert pulled["path"] == str(dest)
    assert pulled["digest"] == f"sha256:{sha256(gguf_bytes)}"
    assert pulled["details"]["commit"] == qwen_repo
    assert pulled["details"]["quantization"] == "Q8_0"
    assert sorted(p.name for p in (lms_dir / REPO).iterdir()) == [Q8]  # no partials, no README
    assert [p for p in (isolated_env / "hf").rglob("*") if p.is_file()] == []  # no Hugging Face cache copy
    (listed,) = hanzo_json("model:list", "--provider", "lmstudio", "--json")
    assert listed["name"] == pulled["name"]
    assert hanzo_json("model:show", f"lms:{REPO}:Q8_0", "--json")["gguf"]["architecture"] == "qwen3"


def test_pulling_again_downloads_nothing(
    lms_dir: Path, hub: FakeHub, qwen_repo: str, gguf_bytes: bytes
) -> None:
    first = pull(f"{REPO}:Q8_0")
    sent = hub.cdn(gguf_bytes).bytes_sent
    again = pull(f"{REPO}:q8_0")
    assert hub.cdn(gguf_bytes).bytes_sent == sent
    assert again.path == first.path == lms_dir / REPO / Q8


def test_default_quant_and_file(
    lms_dir: Path, hub: FakeHub, qwen_repo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pull(REPO).details["quantization"] == "Q8_0"  # the Hugging Face plugin's default...
    said = capsys.readouterr().err
    assert "default" in said and "F16" in said  # ...and what else there is
    f16 = f"{REPO}/Qwen3-Embedding-0.6B-f16.gguf"
    assert pull(REPO, file="Qwen3-Embedding-0.6B-f16.gguf").name == f16
    assert pull(f16).name == f16


def test_revision(lms_dir: Path, hub: FakeHub, qwen_repo: str, gguf_bytes: bytes) -> None:
    v1 = hub.add_repo(REPO, {Q8: gguf_bytes + b"v1"}, revision="v1")
    pulled = pull(f"{REPO}:Q8_0", revision="v1")
    assert pulled.details["commit"] == v1
    assert (lms_dir / REPO / Q8).read_bytes() == gguf_bytes + b"v1"


def test_split_model_from_a_subfolder_is_flattened(lms_dir: Path, hub: FakeHub) -> None:
    shards = {f"Q4_K_M/Big-Q4_K_M-0000{i}-of-00003.gguf": bytes([i]) * 1000 for i in (1, 2, 3)}
    hub.add_repo("org/Big-GGUF", {**shards, "Big-Q8_0.gguf": b"x" * 10})
    pulled = pull("org/Big-GGUF:Q4_K_M")
    assert pulled.name == "org/Big-GGUF/Big-Q4_K_M-00001-of-00003.gguf"
    assert [f.kind for f in pulled.files] == ["model", "shard", "shard"]
    assert pulled.size == 3000
    names = sorted(p.name for p in (lms_dir / "org" / "Big-GGUF").iterdir())
    assert names == [f"Big-Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3)]


def test_pull_reports_loaded_state(
    lms_dir: Path, hub: FakeHub, qwen_repo: str, lmstudio: LMStudioServer
) -> None:
    lmstudio.add("qwen3-embedding-0.6b@q8_0", publisher="Qwen", quantization="Q8_0")
    pulled = pull(f"{REPO}:Q8_0")
    assert pulled.details["loaded"] is False
    assert pulled.details["lmstudio_id"] == "qwen3-embedding-0.6b@q8_0"


def test_refusals(lms_dir: Path, hub: FakeHub, qwen_repo: str) -> None:
    assert_one_line_error(run_hanzo("model:pull", "lms:nobody/nothing-GGUF:Q8_0"), "not found")
    with pytest.raises(NotFoundError, match=r"no Q2_K.*Q8_0"):
        pull(f"{REPO}:Q2_K")
    with pytest.raises(HanzoError, match=r"README\.md is not a GGUF model"):
        pull(REPO, file="README.md")
    with pytest.raises(HanzoError, match="not both"):
        pull(f"{REPO}:Q8_0", file="x.gguf")
    # --include belongs to the huggingface provider: the command refuses it before any request
    proc = run_hanzo("model:pull", f"lms:{REPO}", "--include", "*.gguf")
    refused = "--include is not an option of provider lmstudio (it is taken by: huggingface)"
    assert_one_line_error(proc, refused, code=2)
    hub.add_repo("org/vlm-GGUF", {"mmproj-model-f16.gguf": b"p", "model-Q8_0.gguf": b"m"})
    with pytest.raises(HanzoError, match=r"mmproj-model-f16\.gguf is not a GGUF model"):
        pull("org/vlm-GGUF", file="mmproj-model-f16.gguf")
    assert list(lms_dir.iterdir()) == []


def test_hostile_server_answers_write_nothing(lms_dir: Path, hub: FakeHub, tmp_path: Path) -> None:
    hub.add_repo("org/evil-GGUF", {"../../../escape-Q8_0.gguf": b"evil"})
    assert_one_line_error(run_hanzo("model:pull", "lms:org/evil-GGUF:Q8_0"), "unsafe")
    hub.add_repo("org/hidden-GGUF", {".hidden-Q8_0.gguf": b"evil"})
    with pytest.raises(HanzoError, match="unsafe"):
        pull("org/hidden-GGUF:Q8_0")
    hub.add_repo("org/tree-GGUF", {"m-Q8_0.gguf": b"evil"})  # a listing that disagrees with the files
    hub.repos["org/tree-GGUF"].tree_overrides["m-Q8_0.gguf"] = {"path": "/etc/m-Q8_0.gguf"}
    with pytest.raises(HanzoError, match="unsafe"):
        pull("org/tree-GGUF:Q8_0")
    hub.add_repo("org/good-GGUF", {"m-Q8_0.gguf": b"data"})
    hub.repos["org/good-GGUF"].repo_id = "../escape"  # the repo id the model info answers with
    assert_one_line_error(run_hanzo("model:pull", "lms:org/good-GGUF:Q8_0"))
    assert list(tmp_path.rglob("*escape*")) == []
    assert [p for p in lms_dir.rglob("*") if p.is_file()] == []


def test_symlinks_planted_in_the_folder_are_not_followed(
    lms_dir: Path, hub: FakeHub, qwen_repo: str, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = lms_dir / REPO
    folder.mkdir(parents=True)
    (folder / f"{Q8}.partial").symlink_to(victim)
    assert_one_line_error(run_hanzo("model:pull", f"lms:{REPO}:Q8_0"), "symlink")
    assert victim.read_text() == "precious"
    (folder / f"{Q8}.partial").unlink()
    folder.rmdir()
    (lms_dir / "Qwen").rmdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (lms_dir / "Qwen").symlink_to(outside)  # a publisher folder that leads out
    with pytest.raises(HanzoError, match="outside"):
        pull(f"{REPO}:Q8_0")
    assert list(outside.iterdir()) == []


def test_interrupted_pull_resumes(lms_dir: Path, hub: FakeHub) -> None:
    """A pull killed midway leaves a partial in LM Studio's folder; the next pull continues it."""
    data = random.Random(7).randbytes(6 * 1024 * 1024)
    hub.add_repo("org/resume-GGUF", {"model-Q8_0.gguf": data})
    cdn = hub.cdn(data)
    cdn.faults.throttle = 1024 * 1024  # slow enough to be interrupted
    first = subprocess.Popen(
        [sys.executable, "-m", "hanzo_cli", "model:pull", "lms:org/resume-GGUF:Q8_0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + 60
        # the downloader records what it wrote every 512 KiB: 2 MiB sent leaves some recorded
        while cdn.bytes_sent < 2 * 1024 * 1024:
            assert first.poll() is None, "the first pull ended before it could be interrupted"
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert 0 < cdn.bytes_sent < len(data)
    cdn.faults.throttle = None
    pulled = hanzo_json("model:pull", "lms:org/resume-GGUF:Q8_0", "--json")
    assert pulled["digest"] == f"sha256:{sha256(data)}"
    dest = lms_dir / "org" / "resume-GGUF" / "model-Q8_0.gguf"
    assert dest.read_bytes() == data
    ranges = [r.headers.get("range", "") for r in hub.server.requests_for(cdn.path) if r.method == "GET"]
    assert any(r.startswith("bytes=") and not r.startswith("bytes=0-") for r in ranges), ranges
    assert cdn.bytes_sent < 2 * len(data)  # the second pull did not start over
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]


def test_existing_folder_spelling_is_kept(lms_dir: Path) -> None:
    (lms_dir / "Qwen" / "Qwen3-GGUF").mkdir(parents=True)
    assert _existing_folder(lms_dir, ModelName("qwen", "qwen3-gguf")) == ("Qwen", "Qwen3-GGUF")
    assert _existing_folder(lms_dir, ModelName("new", "repo")) == ("new", "repo")


def test_pull_from_olah(
    lms_dir: Path, olah: Olah, monkeypatch: pytest.MonkeyPatch, gguf_bytes: bytes
) -> None:
    """A real Hub stand-in: files kept in git (no LFS sha256), verified by git object id."""
    repo_id = unique_repo_id("lmstudio") + "-GGUF"
    olah.make_repo(repo_id, {"model-Q8_0.gguf": gguf_bytes, "model-Q4_K_M.gguf": gguf_bytes[:-1] + b"\1"})
    monkeypatch.setenv("HF_ENDPOINT", olah.endpoint)
    pulled = pull(f"{repo_id}:Q8_0")
    dest = lms_dir / repo_id / "model-Q8_0.gguf"
    assert pulled.path == dest
    assert dest.read_bytes() == gguf_bytes
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]  # no staging leftovers
