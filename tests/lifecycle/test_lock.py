"""model:lock, model:pull --lock and model:lock --check: a lock reproduces exactly, on another
"machine" (a second HANZO_HOME / HF_HOME), against a real registry and olah."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.fixtures.models import fake_gguf_with_file_type
from tests.fixtures.olah import Olah, unique_repo_id
from tests.fixtures.registry import Registry
from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo
from tests.huggingface.conftest import scanned
from tests.lifecycle.test_hf_updates import commit
from tests.lifecycle.test_ollama_updates import TEMPLATE_V1, TEMPLATE_V2, push


@pytest.fixture(autouse=True)
def only_these_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANZO_PLUGINS", "ollama,huggingface")


def other_machine(tmp_path: Path) -> dict[str, str]:
    return {"HANZO_HOME": str(tmp_path / "other-hanzo"), "HF_HOME": str(tmp_path / "other-hf")}


def test_an_ollama_lock_reproduces_exactly(registry: Registry, tiny_llama_gguf: Path, tmp_path: Path) -> None:
    v1 = push(registry, tiny_llama_gguf, TEMPLATE_V1)
    name = f"{registry.host}/ns/tiny:q8"
    pulled = hanzo_json("model:pull", "--insecure", f"ollama:{name}", "--json")
    lock = tmp_path / "hanzo.lock"
    proc = run_hanzo("model:lock", "-o", str(lock))
    assert proc.returncode == 0, proc.stderr

    data = json.loads(lock.read_text())
    assert data["hanzo_lock_version"] == 1
    [entry] = data["models"]
    assert (entry["provider"], entry["name"], entry["version"]) == ("ollama", name, v1)
    assert [(f["name"], f["size"]) for f in entry["files"]] == [
        (f["kind"], f["size"]) for f in pulled["files"]
    ]
    for f, local in zip(entry["files"], pulled["files"], strict=True):
        assert f["sha256"] == hashlib.sha256(Path(local["path"]).read_bytes()).hexdigest()
    assert run_hanzo("model:lock", "--check", str(lock)).returncode == 0

    # The tag moves on upstream; another machine still gets exactly the locked bytes.
    v2 = push(registry, tiny_llama_gguf, TEMPLATE_V2)
    other = other_machine(tmp_path)
    assert_one_line_error(run_hanzo("model:lock", "--check", str(lock), env=other), "missing")
    [got] = hanzo_json("model:pull", "--lock", str(lock), "--insecure", "--json", env=other)
    assert (got["name"], got["digest"]) == (name, v1)
    assert run_hanzo("model:lock", "--check", str(lock), env=other).returncode == 0

    # This machine moves: the check now fails, in one line.
    hanzo_json("model:update", "--all", "--insecure", "--json")
    proc = run_hanzo("model:lock", "--check", str(lock))
    assert_one_line_error(proc, "differs from", f"ollama:{name}")
    assert hanzo_json("model:list", "--json")[0]["digest"] == v2

    # Gone upstream: a clear refusal, nothing pulled.
    registry.delete_manifest("ns/tiny", v1)
    third = {"HANZO_HOME": str(tmp_path / "third")}
    proc = run_hanzo("model:pull", "--lock", str(lock), "--insecure", env=third)
    assert_one_line_error(proc, "not found")
    assert hanzo_json("model:list", "--json", env=third) == []


def test_a_hugging_face_lock_pins_the_commit(
    olah: Olah, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", olah.endpoint)
    repo_id = unique_repo_id("hanzo-lock")
    gguf = fake_gguf_with_file_type(tmp_path / "v1.gguf", file_type="Q8_0", n_embd=32)
    v1 = commit(olah, repo_id, gguf, "# v1\n")
    # The GGUF (LFS: its sha256 is known) and the README (kept in git: hashed to be locked).
    hanzo_json("model:pull", f"hf:{repo_id}:Q8_0", "--json")
    hanzo_json("model:pull", f"hf:{repo_id}/README.md", "--json")
    lock = tmp_path / "hanzo.lock"
    proc = run_hanzo("model:lock", f"hf:{repo_id}:Q8_0", f"hf:{repo_id}/README.md", "-o", str(lock))
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(lock.read_text())["models"]
    assert {e["name"]: (e["version"], [(f["name"], f["sha256"]) for f in e["files"]]) for e in entries} == {
        f"{repo_id}:Q8_0": (v1, [("Tiny-Q8_0.gguf", hashlib.sha256(gguf.read_bytes()).hexdigest())]),
        f"{repo_id}/README.md": (v1, [("README.md", hashlib.sha256(b"# v1\n").hexdigest())]),
    }

    commit(
        olah, repo_id, fake_gguf_with_file_type(tmp_path / "v2.gguf", file_type="Q8_0", n_embd=64), "# v2\n"
    )
    other = other_machine(tmp_path)
    got = hanzo_json("model:pull", "--lock", str(lock), "--json", env=other)
    assert [m["details"]["revision"] for m in got] == [v1, v1]
    assert run_hanzo("model:lock", "--check", str(lock), env=other).returncode == 0
    assert {c for _, c, _ in scanned(tmp_path / "other-hf" / "hub")} == {v1}


BAD_LOCKS = {
    "not JSON": ("{", "not a valid lock file"),
    "no version": ('{"models": []}', "not a hanzo lock file"),
    "newer format": ('{"hanzo_lock_version": 2, "models": []}', "version 2"),
    "bad file entry": (
        '{"hanzo_lock_version": 1, "models": [{"provider": "ollama", "name": "m", "version": "v",'
        ' "files": [{"name": "model", "size": 1, "sha256": "xyz"}]}]}',
        "sha256",
    ),
    "uninstalled provider": (
        '{"hanzo_lock_version": 1, "models": [{"provider": "lmstudio", "name": "m", "version": "v",'
        f' "files": [{{"name": "model", "size": 1, "sha256": "{"a" * 64}"}}]}}]}}',
        "lmstudio",
    ),
}


@pytest.mark.parametrize("case", list(BAD_LOCKS))
def test_a_bad_lock_file_is_one_clear_line(case: str, tmp_path: Path) -> None:
    text, fragment = BAD_LOCKS[case]
    lock = tmp_path / "bad.lock"
    lock.write_text(text)
    env = {"HANZO_PLUGINS": "ollama"}
    assert_one_line_error(run_hanzo("model:pull", "--lock", str(lock), env=env), fragment)
    assert_one_line_error(run_hanzo("model:lock", "--check", str(lock), env=env), fragment)


def test_lock_usage_errors(tmp_path: Path) -> None:
    assert_one_line_error(run_hanzo("model:pull", "x", "--lock", "hanzo.lock"), "--lock", code=2)
    assert_one_line_error(run_hanzo("model:pull"), "--lock", code=2)
    assert_one_line_error(run_hanzo("model:lock", "-o", str(tmp_path / "l")), "no models")
    assert not (tmp_path / "l").exists()
