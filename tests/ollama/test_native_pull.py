"""Native pulls (no Ollama server) against a real CNCF distribution registry."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hanzo_ollama.provider import OllamaProvider

from hanzo_cli.errors import HanzoError, IntegrityError, NotFoundError
from hanzo_cli.providers import ModelInfo, PullOptions
from hanzo_cli.store import Store
from tests.fixtures.registry import Registry
from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo
from tests.ollama.conftest import CdnRegistry

TEMPLATE = b"{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>{{ end }}{{ .Prompt }}"
PARAMS = b'{"stop": ["<|im_end|>"], "num_ctx": 8192}'
LICENSE = b"Apache License 2.0"


def model_layers(gguf: Path, template: bytes = TEMPLATE) -> list[tuple[str, bytes]]:
    return [("model", gguf.read_bytes()), ("template", template), ("params", PARAMS), ("license", LICENSE)]


def pull(name: str, *, insecure: bool = True) -> ModelInfo:
    return OllamaProvider().pull(name, PullOptions(insecure=insecure))


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_pull_list_show_delete_through_the_cli(registry: Registry, tiny_llama_gguf: Path) -> None:
    manifest = registry.push_ollama_model("ns/tiny", "Q8_0", model_layers(tiny_llama_gguf))
    manifest_digest = registry.get_manifest("ns/tiny", "Q8_0").headers["Docker-Content-Digest"]
    name = f"{registry.host}/ns/tiny:Q8_0"
    blobs = [manifest["config"], *manifest["layers"]]

    pulled = hanzo_json("model:pull", "--provider", "ollama", "--insecure", name, "--json")
    gguf_blob = Store.default().blob_path(manifest["layers"][0]["digest"])
    assert pulled["name"] == name
    assert pulled["digest"] == manifest_digest
    assert pulled["size"] == sum(b["size"] for b in blobs)
    assert pulled["path"] == str(gguf_blob)
    assert gguf_blob.read_bytes() == tiny_llama_gguf.read_bytes()
    assert [f["kind"] for f in pulled["files"]] == ["config", "model", "template", "params", "license"]
    for f in pulled["files"]:
        assert hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest() == f["digest"].split(":")[1]

    listed = hanzo_json("model:list", "--json")
    assert [(m["provider"], m["name"], m["digest"], m["size"], m["path"]) for m in listed] == [
        ("ollama", name, manifest_digest, pulled["size"], str(gguf_blob))
    ]

    shown = hanzo_json("model:show", f"ollama:{name}", "--json")
    assert shown["gguf"]["architecture"] == "llama"
    assert shown["gguf"]["embedding_length"] == 32

    proc = run_hanzo("model:delete", "--yes", f"ollama:{name}")
    assert proc.returncode == 0, proc.stderr
    assert hanzo_json("model:list", "--json") == []
    assert files_under(Store.default().blobs_dir) == []


def test_ollama_models_env_receives_the_layout(
    registry: Registry, tiny_llama_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With $OLLAMA_MODELS set, the model lands where `ollama serve` will look for it."""
    ollama_models = tmp_path / "ollama-models"
    monkeypatch.setenv("OLLAMA_MODELS", str(ollama_models))
    manifest = registry.push_ollama_model("ns/tiny", "latest", model_layers(tiny_llama_gguf))

    info = pull(f"{registry.host}/ns/tiny")

    written = ollama_models / "manifests" / registry.host / "ns" / "tiny" / "latest"
    assert written.read_bytes() == registry.get_manifest("ns/tiny", "latest").content
    for blob in (manifest["config"], *manifest["layers"]):
        assert (ollama_models / "blobs" / blob["digest"].replace(":", "-")).is_file()
    assert info.path == ollama_models / "blobs" / manifest["layers"][0]["digest"].replace(":", "-")
    assert not Store.default().root.exists()  # hanzo's own store was not touched


def test_blobs_already_present_are_not_fetched_again(
    cdn_registry: CdnRegistry, tiny_llama_gguf: Path
) -> None:
    first = cdn_registry.push_model("ns/chat", "v1", model_layers(tiny_llama_gguf))
    second = cdn_registry.push_model(
        "ns/chat", "v2", model_layers(tiny_llama_gguf, template=b"{{ .Prompt }}")
    )
    pull(f"{cdn_registry.host}/ns/chat:v1")
    store = Store.default()
    first_blobs = [b["digest"] for b in (first["config"], *first["layers"])]
    second_blobs = [b["digest"] for b in (second["config"], *second["layers"])]
    shared = [d for d in second_blobs if d in first_blobs]
    assert len(shared) == 4  # config, model, params, license: only the template differs
    before = {d: store.blob_path(d).stat().st_ino for d in shared}
    cdn_registry.cdn.reset_counters()

    pull(f"{cdn_registry.host}/ns/chat:v2")

    fetched = {r.path for r in cdn_registry.cdn.requests}
    assert fetched == {cdn_registry.cdn_path(second["layers"][1]["digest"])}
    assert {d: store.blob_path(d).stat().st_ino for d in shared} == before


def test_blob_redirect_to_the_cdn_is_followed(cdn_registry: CdnRegistry, tiny_llama_gguf: Path) -> None:
    manifest = cdn_registry.push_model("ns/tiny", "v1", model_layers(tiny_llama_gguf))
    info = pull(f"{cdn_registry.host}/ns/tiny:v1")
    assert info.path is not None and info.path.read_bytes() == tiny_llama_gguf.read_bytes()
    model_path = cdn_registry.cdn_path(manifest["layers"][0]["digest"])
    assert cdn_registry.cdn.file(model_path).bytes_sent == tiny_llama_gguf.stat().st_size


def _state_done(state: Path) -> int:
    """Bytes the downloader's state file says are on disk (0 while there is none)."""
    try:
        return sum(done for _, _, done in json.loads(state.read_text())["parts"])
    except (OSError, ValueError, KeyError):
        return 0


def test_kill_9_mid_pull_then_resume(cdn_registry: CdnRegistry) -> None:
    big = os.urandom(8 << 20)
    manifest = cdn_registry.push_model("ns/big", "v1", [("model", big)])
    digest = manifest["layers"][0]["digest"]
    # 1 MiB/s: the first pull would take 8 s; it is killed after about 1 MiB.
    served = cdn_registry.publish(digest, throttle=1 << 20)
    name = f"ollama:{cdn_registry.host}/ns/big:v1"
    blob = Store.default().blob_path(digest)
    state = Store.default().partial_path(digest).with_name(f"sha256-{digest[7:]}.json")

    proc = subprocess.Popen(
        [sys.executable, "-m", "hanzo_cli", "model:pull", "--insecure", name],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while _state_done(state) < 1 << 20:
            assert proc.poll() is None, "the pull ended before it could be killed"
            assert time.monotonic() < deadline, "the pull made no progress"
            time.sleep(0.02)
    finally:
        proc.kill()  # SIGKILL: no cleanup runs
        proc.wait()
    kept = _state_done(state)
    # What each part kept (several parts when the downloader split one, see
    # hanzo_cli/download/attempt.py): the resumed pull must ask for none of it.
    kept_ranges = [(start, start + done) for start, _end, done in json.loads(state.read_text())["parts"]]
    assert not blob.exists()
    served.faults.throttle = None
    cdn_registry.cdn.reset_counters()

    proc2 = run_hanzo("model:pull", "--insecure", name)

    assert proc2.returncode == 0, proc2.stderr
    assert blob.read_bytes() == big
    assert not state.exists()
    # The second pull asked only for bytes the first one had not kept. (Byte counts would be
    # blurred by the killed connection, whose server thread may still count a last chunk.)
    ranges = [
        r.headers.get("range", "") for r in cdn_registry.cdn.requests_for(cdn_registry.cdn_path(digest))
    ]
    assert ranges and all(r.startswith("bytes=") for r in ranges), ranges
    assert kept >= 1 << 20
    starts = [int(r[len("bytes=") :].split("-")[0]) for r in ranges]
    assert not [s for s in starts for lo, hi in kept_ranges if lo <= s < hi], (starts, kept_ranges)


def test_corrupted_blob_is_rejected_and_nothing_kept(
    cdn_registry: CdnRegistry, tiny_llama_gguf: Path
) -> None:
    """The CDN serves bytes that do not match the manifest's digest."""
    manifest = cdn_registry.push_model("ns/tiny", "v1", model_layers(tiny_llama_gguf))
    model = manifest["layers"][0]["digest"]
    cdn_registry.publish(model, corrupt_offset=1000)
    store = Store.default()

    proc = run_hanzo("model:pull", "--insecure", f"ollama:{cdn_registry.host}/ns/tiny:v1")

    assert_one_line_error(proc, "sha256 mismatch")
    assert not store.manifests_dir.exists()
    # Neither the bad bytes nor a partial to resume from (the downloader's empty lock file may
    # remain); blobs that verified stay for a retry.
    kept = [
        p.name for p in files_under(store.blobs_dir) if model[7:] in p.name and not p.name.endswith(".lock")
    ]
    assert kept == []
    with pytest.raises(IntegrityError):
        pull(f"{cdn_registry.host}/ns/tiny:v1")


@pytest.mark.parametrize(("repo", "tag"), [("ns/tiny", "nosuchtag"), ("ns/nosuchmodel", "v1")])
def test_unknown_model_is_not_found(registry: Registry, tiny_llama_gguf: Path, repo: str, tag: str) -> None:
    registry.push_ollama_model("ns/tiny", "v1", model_layers(tiny_llama_gguf))
    name = f"{registry.host}/{repo}:{tag}"
    with pytest.raises(NotFoundError, match="not found"):
        pull(name)
    proc = run_hanzo("model:pull", "--insecure", f"ollama:{name}")
    assert_one_line_error(proc, "not found", f"{repo}:{tag}")
    assert not Store.default().root.exists()


def test_repository_is_lowercased_for_the_registry_but_spelled_as_typed_on_disk(
    registry: Registry, tiny_llama_gguf: Path
) -> None:
    """OCI registries only take lower-case repositories; tags keep their case; Ollama names
    compare case-insensitively."""
    registry.push_ollama_model("team/embed", "Q8_0", model_layers(tiny_llama_gguf))
    store = Store.default()

    first = pull(f"{registry.host}/Team/Embed:Q8_0")
    assert first.name == f"{registry.host}/Team/Embed:Q8_0"
    assert (store.manifests_dir / registry.host / "Team" / "Embed" / "Q8_0").is_file()

    again = pull(f"{registry.host}/team/embed:Q8_0")  # another spelling updates the same model
    assert again.name == first.name
    assert [n.display() for n, _ in store.manifests()] == [first.name]

    provider = OllamaProvider()
    found = provider.get(f"{registry.host}/TEAM/EMBED:q8_0")
    assert found is not None and found.digest == first.digest
    with pytest.raises(NotFoundError):  # the tag's case matters to the registry
        pull(f"{registry.host}/team/embed:q8_0")


def test_complete_partial_is_finished_without_a_request(registry: Registry) -> None:
    """The 416 quirk: asking this registry for a range that starts at the blob's size gets a 416
    with a wrong Content-Length, so a partial that is already complete must not be requested."""
    data = os.urandom(300_000)
    manifest = registry.push_ollama_model("ns/done", "v1", [("model", data)])
    digest = manifest["layers"][0]["digest"]
    url = registry.blob_url("ns/done", digest)
    with registry.client.stream("GET", url, headers={"Range": f"bytes={len(data)}-"}) as quirk:
        assert quirk.status_code == 416  # (reading its body fails: the Content-Length is wrong)
    # What a pull killed after its last byte but before the rename leaves behind: the partial and
    # the downloader's state file (documented format, version 1).
    blob = Store.default().blob_path(digest)
    partial = Store.default().partial_path(digest)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(data)
    state = {"version": 1, "size": len(data), "sha256": digest[7:], "parts": [[0, len(data), len(data)]]}
    partial.with_name(partial.name + ".json").write_text(json.dumps(state))
    inode = partial.stat().st_ino

    info = pull(f"{registry.host}/ns/done:v1")

    assert info.path == blob
    assert blob.stat().st_ino == inode  # renamed into place, not downloaded again
    assert not partial.exists()


def test_repull_of_a_moved_tag_drops_blobs_nothing_uses(registry: Registry, tiny_llama_gguf: Path) -> None:
    old = registry.push_ollama_model("ns/m", "v1", [("model", b"old weights"), ("license", LICENSE)])
    pull(f"{registry.host}/ns/m:v1")
    new = registry.push_ollama_model("ns/m", "v1", [("model", b"new weights"), ("license", LICENSE)])
    store = Store.default()

    pull(f"{registry.host}/ns/m:v1")

    assert not store.has_blob(old["layers"][0]["digest"])
    assert store.has_blob(new["layers"][0]["digest"])
    assert store.has_blob(new["layers"][1]["digest"])  # the license is shared by both versions


def test_delete_keeps_blobs_another_model_uses(registry: Registry, tiny_llama_gguf: Path) -> None:
    a = registry.push_ollama_model("ns/a", "v1", model_layers(tiny_llama_gguf))
    b = registry.push_ollama_model("ns/b", "v1", model_layers(tiny_llama_gguf, template=b"{{ .Prompt }}"))
    for repo in ("ns/a", "ns/b"):
        assert run_hanzo("model:pull", "--insecure", f"ollama:{registry.host}/{repo}:v1").returncode == 0
    store = Store.default()

    proc = run_hanzo("model:delete", "-y", f"ollama:{registry.host}/ns/a:v1")

    assert proc.returncode == 0, proc.stderr
    assert not store.has_blob(a["layers"][1]["digest"])  # a's own template
    for blob in (b["config"], *b["layers"]):
        assert store.has_blob(blob["digest"])
    assert [m["name"] for m in hanzo_json("model:list", "--json")] == [f"{registry.host}/ns/b:v1"]
    assert (
        hanzo_json("model:show", f"ollama:{registry.host}/ns/b:v1", "--json")["gguf"]["architecture"]
        == "llama"
    )
    again = run_hanzo("model:delete", "-y", f"ollama:{registry.host}/ns/a:v1")
    assert_one_line_error(again, "not found")


def test_plain_http_needs_insecure(registry: Registry) -> None:
    with pytest.raises(HanzoError, match="--insecure"):
        pull(f"http://{registry.host}/ns/m:v1", insecure=False)
    proc = run_hanzo("model:pull", f"ollama:http://{registry.host}/ns/m:v1")
    assert_one_line_error(proc, "--insecure")


def test_native_forced_while_a_server_runs(
    registry: Registry, tiny_llama_gguf: Path, ollama_api: Any
) -> None:
    registry.push_ollama_model("ns/tiny", "v1", model_layers(tiny_llama_gguf))
    name = f"ollama:{registry.host}/ns/tiny:v1"
    pulled = hanzo_json("model:pull", "--insecure", "--native", name, "--json")
    assert pulled["path"].startswith(str(Store.default().blobs_dir))
    assert ollama_api.calls("/api/pull") == []
