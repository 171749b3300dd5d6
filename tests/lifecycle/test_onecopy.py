"""One copy on disk across providers: a pull links a file verified in another store instead of
downloading it (the registry's log proves no bytes moved), model:dedup links existing duplicates,
deleting in one provider never breaks the other's copy, and huggingface_hub / the real `hf` CLI still
see a clean cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hanzo_cli.constants import cache_dir
from hanzo_cli.store import Store
from tests.fixtures.models import fake_gguf_with_file_type
from tests.fixtures.olah import Olah, unique_repo_id
from tests.fixtures.registry import Registry
from tests.helpers import hanzo_json, run_hanzo
from tests.huggingface.conftest import scanned
from tests.lifecycle.conftest import served
from tests.lifecycle.test_hf_updates import commit
from tests.lifecycle.test_ollama_updates import PARAMS
from tests.ollama.conftest import CdnRegistry, cdn_registry  # noqa: F401  (fixture)


@pytest.fixture(autouse=True)
def setup(olah: Olah, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", olah.endpoint)
    monkeypatch.setenv("HANZO_PLUGINS", "ollama,huggingface")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def both(olah: Olah, registry: Registry, tmp_path: Path) -> tuple[bytes, str, str]:
    """The same GGUF on the Hub stand-in and in the registry; returns (bytes, hf ref, ollama ref)."""
    gguf = fake_gguf_with_file_type(tmp_path / "m.gguf", file_type="Q8_0", n_embd=96)
    repo_id = unique_repo_id("hanzo-onecopy")
    commit(olah, repo_id, gguf, "# one copy\n")
    registry.push_ollama_model("ns/same", "q8", [("model", gguf.read_bytes()), ("params", PARAMS)])
    return gguf.read_bytes(), f"hf:{repo_id}:Q8_0", f"ollama:{registry.host}/ns/same:q8"


def model_blob_bytes(registry: Registry, since: int, data: bytes) -> int:
    return sum(r.bytes for r in served(registry)[since:] if r.path.endswith(f"/blobs/sha256:{sha(data)}"))


def inode(path: str) -> int:
    return Path(path).resolve().stat().st_ino


def test_a_pull_links_a_file_verified_in_another_store(
    olah: Olah, logged_registry: Registry, tmp_path: Path
) -> None:
    data, hf_ref, ollama_ref = both(olah, logged_registry, tmp_path)
    hf = hanzo_json("model:pull", hf_ref, "--json")
    before = len(served(logged_registry))
    proc = run_hanzo("model:pull", "--insecure", ollama_ref, "--json")
    assert proc.returncode == 0, proc.stderr
    ollama = json.loads(proc.stdout)
    assert model_blob_bytes(logged_registry, before, data) == 0  # nothing downloaded for the GGUF
    assert "hard link of the verified" in proc.stderr  # said aloud
    assert inode(ollama["path"]) == inode(hf["path"])
    usage = hanzo_json("model:du", "--json")
    assert usage["shared_between_providers"] == len(data)
    assert usage["duplicate_bytes"] == 0

    # Deleting the Hub copy leaves Ollama's intact, and the other way round.
    assert run_hanzo("model:delete", "--yes", hf_ref).returncode == 0
    assert sha(Path(ollama["path"]).read_bytes()) == sha(data)
    assert scanned(tmp_path / "hf" / "hub") == {}


def test_dedup_links_existing_duplicates_and_deleting_one_keeps_the_other(
    olah: Olah, logged_registry: Registry, tmp_path: Path
) -> None:
    data, hf_ref, ollama_ref = both(olah, logged_registry, tmp_path)
    hf = hanzo_json("model:pull", hf_ref, "--json")
    shutil.rmtree(cache_dir() / "verified")  # forget what was verified: the next pull downloads
    before = len(served(logged_registry))
    ollama = hanzo_json("model:pull", "--insecure", ollama_ref, "--json")
    assert model_blob_bytes(logged_registry, before, data) == len(data)
    assert inode(ollama["path"]) != inode(hf["path"])
    assert hanzo_json("model:du", "--json")["duplicate_bytes"] == len(data)

    [planned] = hanzo_json("model:dedup", "--dry-run", "--json")
    assert (planned["how"], planned["size"], planned["sha256"]) == ("would link", len(data), sha(data))
    assert inode(ollama["path"]) != inode(hf["path"])
    [done] = hanzo_json("model:dedup", "--json")
    assert done["how"] == "hard link"
    assert inode(ollama["path"]) == inode(hf["path"])
    usage = hanzo_json("model:du", "--json")
    assert (usage["duplicate_bytes"], usage["shared_between_providers"]) == (0, len(data))
    assert hanzo_json("model:dedup", "--json") == []

    # huggingface_hub and the real hf CLI see the cache as before.
    view = scanned(tmp_path / "hf" / "hub")
    assert list(view.values()) == [len(data)]
    listing = subprocess.run(
        [str(Path(sys.executable).with_name("hf")), "cache", "ls", "--format", "json"],
        capture_output=True,
        text=True,
        env=os.environ,
    )
    assert listing.returncode == 0, listing.stderr
    assert hf_ref.split(":", 1)[1].rsplit(":", 1)[0] in listing.stdout

    assert run_hanzo("model:delete", "--yes", ollama_ref).returncode == 0
    assert not Store.default().blob_path("sha256:" + sha(data)).exists()
    assert sha(Path(hf["path"]).read_bytes()) == sha(data)
    assert list(scanned(tmp_path / "hf" / "hub").values()) == [len(data)]


def test_dedup_and_prune_in_other_processes_during_a_pull_lose_nothing(
    olah: Olah,
    cdn_registry: CdnRegistry,  # noqa: F811
    tmp_path: Path,
) -> None:
    data, hf_ref, _ = both(olah, cdn_registry.registry, tmp_path)
    other = fake_gguf_with_file_type(tmp_path / "other.gguf", file_type="Q8_0", n_embd=160).read_bytes()
    manifest = cdn_registry.push_model("ns/slow", "v1", [("model", other), ("params", PARAMS)])
    cdn_registry.publish(manifest["layers"][0]["digest"], throttle=max(1, len(other) // 3))  # ~3 s
    cdn_registry.push_model("ns/same", "q8", [("model", data), ("params", PARAMS)])
    hanzo_json("model:pull", hf_ref, "--json")
    shutil.rmtree(cache_dir() / "verified")
    hanzo_json("model:pull", "--insecure", f"ollama:{cdn_registry.host}/ns/same:q8", "--json")  # a duplicate

    pull = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hanzo_cli",
            "model:pull",
            "--insecure",
            "-q",
            f"ollama:{cdn_registry.host}/ns/slow:v1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = Store.default().partial_path(manifest["layers"][0]["digest"])
    deadline = time.monotonic() + 60
    while not partial.exists() and time.monotonic() < deadline and pull.poll() is None:
        time.sleep(0.05)
    assert partial.exists(), "the pull never started writing"
    while pull.poll() is None:
        assert run_hanzo("model:dedup").returncode == 0
        assert run_hanzo("model:prune", "--partials-older-than", "0s").returncode == 0
    _, err = pull.communicate()
    assert pull.returncode == 0, err
    for model in hanzo_json("model:list", "--json"):
        for f in model["files"]:
            assert sha(Path(f["path"]).read_bytes()) == f["digest"].split(":")[1], model["name"]
    assert hanzo_json("model:du", "--json")["duplicate_bytes"] == 0
    assert list(scanned(tmp_path / "hf" / "hub").values()) == [len(data)]


def test_lm_studio_shares_the_hub_copy_and_dedup_sees_its_files(
    olah: Olah, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LM Studio pulls through the Hub's FileSource: a file already in the HF cache is linked; and
    LM Studio's files (listed without digests) are still found by model:dedup through the records."""
    monkeypatch.setenv("HANZO_PLUGINS", "ollama,huggingface,lmstudio")
    monkeypatch.setenv("LMSTUDIO_MODELS_DIR", str(tmp_path / "lms-models"))
    data, hf_ref, _ = both(olah, registry, tmp_path)
    hf = hanzo_json("model:pull", hf_ref, "--json")
    repo_id = hf_ref.split(":", 1)[1].rsplit(":", 1)[0]
    lms = hanzo_json("model:pull", f"lmstudio:{repo_id}:Q8_0", "--json")
    assert inode(lms["path"]) == inode(hf["path"])

    # A second, separate copy in LM Studio's folder (as `lms get` would leave it) is linked by dedup.
    assert run_hanzo("model:delete", "--yes", f"lmstudio:{repo_id}:Q8_0").returncode == 0
    assert sha(Path(hf["path"]).read_bytes()) == sha(data)  # the Hub copy survived
    shutil.rmtree(cache_dir() / "verified")
    lms = hanzo_json("model:pull", f"lmstudio:{repo_id}:Q8_0", "--json")
    assert inode(lms["path"]) != inode(hf["path"])
    [done] = hanzo_json("model:dedup", "--json")
    assert (done["how"], done["sha256"]) == ("hard link", sha(data))
    assert inode(lms["path"]) == inode(hf["path"])
    assert list(scanned(tmp_path / "hf" / "hub").values()) == [len(data)]
