"""Server mode: through a running Ollama (the loopback server of ``fake_ollama.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hanzo_ollama.provider import OllamaProvider
from hanzo_ollama.server import OllamaServer, ollama_host

from hanzo_cli.errors import HanzoError, NotFoundError
from hanzo_cli.providers import ModelInfo, PullOptions
from tests.fixtures.registry import Registry
from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo
from tests.ollama.fake_ollama import FakeModel, FakeOllama
from tests.ollama.test_native_pull import model_layers

EMBED = FakeModel("dengcao/Qwen3-Embedding-0.6B:Q8_0", [b"embedding weights", b"{{ .Prompt }}"])
CHAT = FakeModel("tinyllama:latest", [b"chat weights"], family="llama", capabilities=["completion"])


def test_pull_relays_progress_per_layer_and_returns_the_model(ollama_api: FakeOllama) -> None:
    ollama_api.add(EMBED)

    proc = run_hanzo("model:pull", "--provider", "ollama", EMBED.name, "--json", env={"HANZO_PROGRESS": "1"})

    assert proc.returncode == 0, proc.stderr
    pulled = json.loads(proc.stdout)
    assert pulled["name"] == EMBED.name
    assert pulled["digest"] == "sha256:" + EMBED.manifest_digest
    assert pulled["size"] == EMBED.size
    assert pulled["path"] == str(ollama_api.blob_path(EMBED))  # the server's GGUF, on this machine
    assert pulled["details"]["capabilities"] == ["embedding"]
    for digest in EMBED.digests():  # one bar per layer, labelled as Ollama labels it
        assert f"pulling {digest[7:19]}" in proc.stderr
    assert "verifying sha256 digest" in proc.stderr
    [call] = ollama_api.calls("/api/pull")
    assert call.body == {"model": EMBED.name, "insecure": False, "stream": True}


def test_pull_passes_insecure(ollama_api: FakeOllama) -> None:
    ollama_api.add(CHAT)
    OllamaProvider().pull("tinyllama", PullOptions(insecure=True))
    assert ollama_api.calls("/api/pull")[0].body["insecure"] is True


def test_unknown_model_error_line_is_not_found(ollama_api: FakeOllama) -> None:
    """Ollama answers 200 and reports the failure as a line inside the stream."""
    with pytest.raises(NotFoundError, match="file does not exist"):
        OllamaProvider().pull("nosuch/model:v1", PullOptions())
    proc = run_hanzo("model:pull", "ollama:nosuch/model:v1")
    assert_one_line_error(proc, "not found", "nosuch/model:v1")


def test_error_line_mid_stream_fails_the_pull(ollama_api: FakeOllama) -> None:
    ollama_api.add(EMBED)
    ollama_api.pull_error = "max retries exceeded: unexpected EOF"
    proc = run_hanzo("model:pull", f"ollama:{EMBED.name}")
    assert_one_line_error(proc, "Ollama: max retries exceeded")
    assert ollama_api.installed == {}


def test_server_that_crashes_mid_pull_is_one_error_line(ollama_api: FakeOllama) -> None:
    ollama_api.add(EMBED)
    ollama_api.drop_pull = True
    proc = run_hanzo("model:pull", f"ollama:{EMBED.name}")
    assert_one_line_error(proc, f"Ollama at {ollama_api.url} stopped answering")


def test_list_keeps_disk_models_when_the_server_fails(
    ollama_api: FakeOllama, registry: Registry, tiny_llama_gguf: Path
) -> None:
    registry.push_ollama_model("ns/tiny", "v1", model_layers(tiny_llama_gguf))
    OllamaProvider().pull_native(f"{registry.host}/ns/tiny:v1", insecure=True)
    ollama_api.fail_tags = True

    proc = run_hanzo("model:list", "--json")

    assert proc.returncode == 0, proc.stderr
    assert [m["name"] for m in json.loads(proc.stdout)] == [f"{registry.host}/ns/tiny:v1"]
    assert "Warning: ollama: Ollama: database is locked" in proc.stderr


def test_stream_that_ends_without_success_fails(ollama_api: FakeOllama) -> None:
    ollama_api.add(EMBED)
    ollama_api.truncate_pull = True
    with pytest.raises(HanzoError, match="ended without success"):
        OllamaProvider().pull(EMBED.name, PullOptions())


def test_list_merges_server_and_disk_without_duplicates(
    ollama_api: FakeOllama,
    registry: Registry,
    tiny_llama_gguf: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama-models"))
    registry.push_ollama_model("ns/tiny", "v1", model_layers(tiny_llama_gguf))
    on_disk = hanzo_json(
        "model:pull", "--native", "--insecure", f"ollama:{registry.host}/ns/tiny:v1", "--json"
    )
    ollama_api.add(EMBED, installed=True)
    # The server also has the model on disk, spelled another way (names compare case-insensitively).
    ollama_api.add(FakeModel(f"{registry.host}/NS/Tiny:v1", [b"same model"]), installed=True)

    listed = hanzo_json("model:list", "--provider", "ollama", "--json")

    assert sorted(m["name"] for m in listed) == sorted([on_disk["name"], EMBED.name])
    by_name = {m["name"]: m for m in listed}
    assert by_name[on_disk["name"]]["path"] == on_disk["path"]  # the disk row, with its GGUF path
    assert by_name[EMBED.name]["digest"] == "sha256:" + EMBED.manifest_digest
    assert by_name[EMBED.name]["details"]["family"] == "qwen3"
    assert by_name[EMBED.name]["modified_at"].startswith("2026-11-20T10:11:12.123456")


def test_show_reads_the_server_and_its_gguf(ollama_api: FakeOllama, tiny_qwen3_gguf: Path) -> None:
    model = FakeModel(EMBED.name, [tiny_qwen3_gguf.read_bytes(), b"{{ .Prompt }}"], dims=32)
    ollama_api.add(model, installed=True)

    shown = hanzo_json("model:show", "ollama:dengcao/qwen3-embedding-0.6b:q8_0", "--json")

    assert shown["name"] == EMBED.name
    assert shown["details"]["capabilities"] == ["embedding"]
    assert shown["details"]["model_info"]["qwen3.embedding_length"] == 32
    assert shown["path"] == str(ollama_api.blob_path(model))
    assert shown["gguf"]["architecture"] == "qwen3"


def test_delete_through_the_server(ollama_api: FakeOllama) -> None:
    ollama_api.add(EMBED, installed=True)
    ollama_api.add(CHAT, installed=True)

    proc = run_hanzo("model:delete", "-y", f"ollama:{EMBED.name}")

    assert proc.returncode == 0, proc.stderr
    assert [r.body for r in ollama_api.calls("/api/delete")] == [{"model": EMBED.name}]
    assert [m["name"] for m in hanzo_json("model:list", "--json")] == [CHAT.name]


def test_delete_of_an_unknown_model_is_not_found(ollama_api: FakeOllama) -> None:
    assert OllamaServer(ollama_api.url).delete("nosuch:latest") is False  # the server's 404
    with pytest.raises(NotFoundError):
        OllamaProvider().delete("nosuch")
    proc = run_hanzo("model:delete", "-y", "ollama:nosuch")
    assert_one_line_error(proc, "not found")


def test_serving_url_names_the_server_only_for_models_it_has(
    ollama_api: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    ollama_api.add(EMBED, installed=True)
    provider = OllamaProvider()
    served = ModelInfo("ollama", EMBED.name)
    assert provider.serving_url(served) == ollama_api.url.rstrip("/")
    assert provider.serving_url(ModelInfo("ollama", "nosuch:latest")) is None
    assert provider.serving_url(ModelInfo("huggingface", EMBED.name)) is None
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")  # nothing answers there
    assert OllamaProvider().serving_url(served) is None


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("", "http://127.0.0.1:11434"),
        ("0.0.0.0", "http://0.0.0.0:11434"),
        ("127.0.0.1:9", "http://127.0.0.1:9"),
        ("ollama.lan", "http://ollama.lan:11434"),
        ("http://ollama.lan", "http://ollama.lan:80"),
        ("https://ollama.lan", "https://ollama.lan:443"),
        ("https://ollama.lan:8443/proxy/", "https://ollama.lan:8443/proxy"),
        ("[::1]:11435", "http://[::1]:11435"),
        (":11435", "http://127.0.0.1:11435"),
    ],
)
def test_ollama_host_is_read_like_ollama_reads_it(
    monkeypatch: pytest.MonkeyPatch, value: str, url: str
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", value)
    assert ollama_host() == url


def test_no_server_means_native_mode(registry: Registry, tiny_llama_gguf: Path) -> None:
    """With OLLAMA_HOST on a closed port (the test default) pulls go straight to the registry."""
    assert OllamaProvider().server() is None
    registry.push_ollama_model("ns/tiny", "v1", model_layers(tiny_llama_gguf))
    info = OllamaProvider().pull(f"{registry.host}/ns/tiny:v1", PullOptions(insecure=True))
    assert info.details["manifest"].endswith("/ns/tiny/v1")


def test_a_server_that_is_not_ollama_is_not_used(fileserver: object) -> None:
    from tests.fixtures.fileserver import FileServer

    assert isinstance(fileserver, FileServer)
    fileserver.add_file("/api/version", b"<html>a web server</html>")
    assert OllamaServer.probe(fileserver.url("")) is None


def test_pull_reports_the_servers_model_not_an_older_native_copy(
    ollama_api: FakeOllama, tiny_llama_gguf: Path
) -> None:
    from hanzo_cli.store import CONFIG_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, MODEL_MEDIA_TYPE, ManifestName, Store

    ollama_api.add(EMBED)
    store = Store.default()  # OLLAMA_MODELS unset: hanzo's store, not the server's folder
    model_digest, model_size = store.add_blob_file(tiny_llama_gguf)
    config_digest, config_size = store.add_blob_bytes(b"{}")
    stale = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": MODEL_MEDIA_TYPE, "digest": model_digest, "size": model_size}],
    }
    store.write_manifest(ManifestName.parse(EMBED.name), json.dumps(stale).encode())

    pulled = OllamaProvider().pull(EMBED.name, PullOptions())

    assert pulled.path == ollama_api.blob_path(EMBED)
    assert pulled.digest == "sha256:" + EMBED.manifest_digest
