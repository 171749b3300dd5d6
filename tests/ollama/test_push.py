"""``model:push`` against a real CNCF distribution registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from hanzo_ollama.provider import OllamaProvider
from hanzo_ollama.push import push_model

from hanzo_cli.errors import HanzoError, NotFoundError
from hanzo_cli.providers import PullOptions
from hanzo_cli.store import Store
from tests.fixtures.registry import Registry
from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo
from tests.ollama.test_native_pull import model_layers


def test_push_then_pull_round_trip(
    registry: Registry, tiny_llama_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.push_ollama_model("src/tiny", "v1", model_layers(tiny_llama_gguf))
    source = f"{registry.host}/src/tiny:v1"
    pulled = hanzo_json("model:pull", "--insecure", f"ollama:{source}", "--json")

    # Mixed case on purpose: the repository is lower-cased for the registry, the tag is not.
    pushed = hanzo_json("model:push", source, f"{registry.host}/Team/Tiny:Q8", "--insecure", "--json")

    assert pushed["digest"] == pulled["digest"]
    assert pushed["skipped"] == []  # another repository: its blobs are not linked to team/tiny yet
    assert len(pushed["uploaded"]) == 5
    assert registry.get_manifest("team/tiny", "Q8").content == registry.get_manifest("src/tiny", "v1").content

    # Another node (another store) pulls what was pushed: the same bytes come back.
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "node2"))
    again = hanzo_json("model:pull", "--insecure", f"ollama:{registry.host}/team/tiny:Q8", "--json")
    assert again["digest"] == pulled["digest"]
    assert Path(again["path"]).read_bytes() == tiny_llama_gguf.read_bytes()
    assert [f["digest"] for f in again["files"]] == [f["digest"] for f in pulled["files"]]


def test_push_skips_blobs_the_registry_has(registry: Registry, tiny_llama_gguf: Path) -> None:
    manifest = registry.push_ollama_model("ns/tiny", "v1", model_layers(tiny_llama_gguf))
    OllamaProvider().pull(f"{registry.host}/ns/tiny:v1", PullOptions(insecure=True))

    result = push_model(f"{registry.host}/ns/tiny:v1", f"{registry.host}/ns/tiny:v2", insecure=True)

    assert result.uploaded == []
    assert result.skipped == [b["digest"] for b in (manifest["config"], *manifest["layers"])]
    assert registry.get_manifest("ns/tiny", "v2").status_code == 200


def test_push_of_an_imported_gguf(registry: Registry, tiny_llama_gguf: Path, tmp_path: Path) -> None:
    """A GGUF imported with model:import (the local provider) can be mirrored to a registry."""
    proc = run_hanzo("model:import", str(tiny_llama_gguf), "--name", "team/emb:v1")
    assert proc.returncode == 0, proc.stderr

    proc = run_hanzo("model:push", "local:team/emb:v1", f"{registry.host}/team/emb:v1", "--insecure")

    assert proc.returncode == 0, proc.stderr
    assert "pushed" in proc.stderr
    info = OllamaProvider(store_root=tmp_path / "other").pull(
        f"{registry.host}/team/emb:v1", PullOptions(insecure=True)
    )
    assert info.path is not None and info.path.read_bytes() == tiny_llama_gguf.read_bytes()


def test_push_of_an_unknown_model_is_not_found(registry: Registry) -> None:
    with pytest.raises(NotFoundError):
        push_model("ns/nothing:v1", f"{registry.host}/ns/nothing:v1", insecure=True)
    proc = run_hanzo("model:push", "ns/nothing:v1", f"{registry.host}/ns/nothing:v1", "--insecure")
    assert_one_line_error(proc, "not found")


def test_push_refuses_a_model_with_a_missing_blob(registry: Registry, tiny_llama_gguf: Path) -> None:
    manifest = registry.push_ollama_model("ns/tiny", "v1", model_layers(tiny_llama_gguf))
    OllamaProvider().pull(f"{registry.host}/ns/tiny:v1", PullOptions(insecure=True))
    Store.default().blob_path(manifest["layers"][1]["digest"]).unlink()

    with pytest.raises(HanzoError, match="missing or incomplete"):
        push_model(f"{registry.host}/ns/tiny:v1", f"{registry.host}/ns/copy:v1", insecure=True)
    assert registry.get_manifest("ns/copy", "v1").status_code == 404


def test_push_of_a_corrupted_local_blob_is_refused_by_the_registry(
    registry: Registry, tiny_llama_gguf: Path
) -> None:
    manifest = registry.push_ollama_model("ns/tiny", "v1", model_layers(tiny_llama_gguf))
    OllamaProvider().pull(f"{registry.host}/ns/tiny:v1", PullOptions(insecure=True))
    blob = Store.default().blob_path(manifest["layers"][1]["digest"])
    blob.write_bytes(b"X" * blob.stat().st_size)  # same size, other bytes

    proc = run_hanzo("model:push", f"{registry.host}/ns/tiny:v1", f"{registry.host}/ns/copy:v1", "--insecure")

    assert_one_line_error(proc, "refused", "DIGEST_INVALID")
    assert registry.get_manifest("ns/copy", "v1").status_code == 404


def test_push_to_plain_http_needs_insecure(registry: Registry, tiny_llama_gguf: Path) -> None:
    registry.push_ollama_model("ns/tiny", "v1", model_layers(tiny_llama_gguf))
    OllamaProvider().pull(f"{registry.host}/ns/tiny:v1", PullOptions(insecure=True))
    proc = run_hanzo("model:push", f"{registry.host}/ns/tiny:v1", f"http://{registry.host}/ns/copy:v1")
    assert_one_line_error(proc, "--insecure")
