"""model:outdated / model:update / pins against a real CNCF registry, counting what it served."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hanzo_cli.store import Store
from tests.fixtures.fileserver import FileServer
from tests.fixtures.registry import Registry
from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo
from tests.lifecycle.conftest import served
from tests.ollama.conftest import CdnRegistry, cdn_registry  # noqa: F401  (fixture)

TEMPLATE_V1 = b"{{ .Prompt }}"
TEMPLATE_V2 = b"{{ if .System }}{{ .System }}{{ end }}{{ .Prompt }} v2"
PARAMS = b'{"num_ctx": 2048}'


@pytest.fixture(autouse=True)
def only_ollama(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANZO_PLUGINS", "ollama")


def push(registry: Registry, gguf: Path, template: bytes, repo: str = "ns/tiny", tag: str = "q8") -> str:
    """Push a model whose layers are the GGUF, a template and params; return the manifest digest."""
    registry.push_ollama_model(
        repo, tag, [("model", gguf.read_bytes()), ("template", template), ("params", PARAMS)]
    )
    return str(registry.get_manifest(repo, tag).headers["Docker-Content-Digest"])


def blob_bytes_served(registry: Registry, since: int) -> dict[str, int]:
    """Body bytes of blob GETs the registry served after its ``since``-th logged request."""
    out: dict[str, int] = {}
    for row in served(registry)[since:]:
        if row.method == "GET" and "/blobs/" in row.path:
            digest = row.path.rsplit("/", 1)[1]
            out[digest] = out.get(digest, 0) + row.bytes
    return out


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_outdated_then_update_fetches_only_the_changed_layer(
    logged_registry: Registry, tiny_llama_gguf: Path
) -> None:
    reg = logged_registry
    v1 = push(reg, tiny_llama_gguf, TEMPLATE_V1)
    name = f"{reg.host}/ns/tiny:q8"
    hanzo_json("model:pull", "--insecure", f"ollama:{name}", "--json")

    before = len(served(reg))
    [row] = hanzo_json("model:outdated", "--insecure", "--json")
    assert (row["name"], row["status"], row["installed"], row["latest"]) == (name, "up-to-date", v1, v1)
    checks = served(reg)[before:]
    assert [(r.method, r.path) for r in checks] == [("GET", "/v2/ns/tiny/manifests/q8")]  # one request

    v2 = push(reg, tiny_llama_gguf, TEMPLATE_V2)
    assert v2 != v1
    [row] = hanzo_json("model:outdated", "--insecure", "--json")
    assert (row["status"], row["installed"], row["latest"]) == ("outdated", v1, v2)
    assert row["fetch_bytes"] == len(TEMPLATE_V2)

    dry = hanzo_json("model:update", "--all", "--dry-run", "--insecure", "--json")
    assert [r["action"] for r in dry] == ["would update"]
    assert hanzo_json("model:list", "--json")[0]["digest"] == v1

    before = len(served(reg))
    [result] = hanzo_json("model:update", name, "--insecure", "--json")
    assert (result["action"], result["now"]) == ("updated", v2)
    # Only the changed layer crossed the wire: the GGUF, params and config were not fetched again.
    assert blob_bytes_served(reg, before) == {sha(TEMPLATE_V2): len(TEMPLATE_V2)}
    store = Store.default()
    [listed] = hanzo_json("model:list", "--json")
    assert listed["digest"] == v2
    assert not store.blob_path(sha(TEMPLATE_V1)).exists()  # only the old version used it
    for f in listed["files"]:
        assert hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest() == f["digest"].split(":")[1]
    assert {p.name for p in store.blobs_dir.iterdir()} == {Path(f["path"]).name for f in listed["files"]}

    # Up to date now: another update transfers no blob bytes.
    before = len(served(reg))
    [again] = hanzo_json("model:update", "--all", "--insecure", "--json")
    assert (again["status"], again["action"]) == ("up-to-date", "skipped")
    assert blob_bytes_served(reg, before) == {}


def test_a_digest_pin_never_moves(logged_registry: Registry, tiny_llama_gguf: Path) -> None:
    reg = logged_registry
    v1 = push(reg, tiny_llama_gguf, TEMPLATE_V1)
    v2 = push(reg, tiny_llama_gguf, TEMPLATE_V2)  # the tag now points at v2
    name = f"{reg.host}/ns/tiny:q8"

    pinned = hanzo_json("model:pull", "--insecure", f"ollama:{name}@{v1}", "--json")
    assert (pinned["name"], pinned["digest"]) == (name, v1)
    before = len(served(reg))
    [row] = hanzo_json("model:outdated", "--insecure", "--json")
    assert (row["status"], row["installed"]) == ("pinned", v1)
    [result] = hanzo_json("model:update", "--all", "--insecure", "--json")
    assert (result["status"], result["action"]) == ("pinned", "skipped")
    assert served(reg)[before:] == []  # a pin is not even checked
    assert hanzo_json("model:list", "--json")[0]["digest"] == v1

    # A pull by tag moves the name on and drops the pin.
    hanzo_json("model:pull", "--insecure", f"ollama:{name}", "--json")
    [row] = hanzo_json("model:outdated", "--insecure", "--json")
    assert (row["status"], row["installed"]) == ("up-to-date", v2)


def test_a_digest_the_registry_does_not_have_is_refused(
    logged_registry: Registry, tiny_llama_gguf: Path
) -> None:
    reg = logged_registry
    push(reg, tiny_llama_gguf, TEMPLATE_V1)
    missing = sha(b"no such manifest")
    proc = run_hanzo("model:pull", "--insecure", f"ollama:{reg.host}/ns/tiny:q8@{missing}")
    assert_one_line_error(proc, "not found")
    proc = run_hanzo("model:pull", "--insecure", f"ollama:{reg.host}/ns/tiny:q8@sha256:abc")
    assert_one_line_error(proc, "not a valid")
    assert hanzo_json("model:list", "--json") == []


def test_unreachable_sources_do_not_fail_the_command(
    logged_registry: Registry, tiny_llama_gguf: Path
) -> None:
    reg = logged_registry
    push(reg, tiny_llama_gguf, TEMPLATE_V1)
    push(reg, tiny_llama_gguf, TEMPLATE_V1, repo="ns/other", tag="latest")
    hanzo_json("model:pull", "--insecure", f"ollama:{reg.host}/ns/tiny:q8", "--json")
    hanzo_json("model:pull", "--insecure", f"ollama:{reg.host}/ns/other", "--json")
    reg.delete_manifest("ns/other", reg.get_manifest("ns/other", "latest").headers["Docker-Content-Digest"])
    rows = {r["name"].split("/", 1)[1]: r for r in hanzo_json("model:outdated", "--insecure", "--json")}
    assert rows["ns/tiny:q8"]["status"] == "up-to-date"
    assert rows["ns/other:latest"]["status"] == "unreachable"
    assert "not found" in rows["ns/other:latest"]["reason"]

    reg.stop()
    proc = run_hanzo("model:outdated", "--insecure")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("unreachable") == 2
    assert "Traceback" not in proc.stderr
    rows = json.loads(run_hanzo("model:update", "--all", "--insecure", "--json").stdout)
    assert [r["action"] for r in rows] == ["skipped", "skipped"]


def test_update_needs_models_or_all() -> None:
    assert_one_line_error(run_hanzo("model:update"), "--all", code=2)
    assert_one_line_error(run_hanzo("model:update", "--all", "x"), "--all", code=2)
    assert_one_line_error(run_hanzo("model:outdated", "ollama:nothing-here"), "not pulled")


def test_a_pin_the_registry_answers_with_other_bytes_is_refused(fileserver: FileServer) -> None:
    """A registry (or proxy) that answers a digest with a manifest of another digest is refused."""
    config, weights = b'{"model_format":"gguf"}', b"GGUF weights"
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": sha(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.ollama.image.model",
                    "digest": sha(weights),
                    "size": len(weights),
                }
            ],
        }
    ).encode()
    asked = sha(b"the manifest that was pinned")
    fileserver.add_route(
        f"/v2/ns/m/manifests/{asked}",
        lambda h: h.send_bytes(body, content_type="application/vnd.docker.distribution.manifest.v2+json"),
    )
    for data in (config, weights):
        fileserver.add_file(f"/v2/ns/m/blobs/{sha(data)}", data)
    proc = run_hanzo("model:pull", "--insecure", f"ollama:127.0.0.1:{fileserver.port}/ns/m:v1@{asked}")
    assert_one_line_error(proc, sha(body), f"not the pinned {asked}")
    assert hanzo_json("model:list", "--json") == []
    assert not Store.default().blobs_dir.exists() or list(Store.default().blobs_dir.iterdir()) == []


def test_a_killed_update_leaves_the_old_version_usable_and_resumes(
    cdn_registry: CdnRegistry,  # noqa: F811
    tiny_llama_gguf: Path,
    tmp_path: Path,
) -> None:
    name = f"{cdn_registry.host}/ns/tiny:q8"
    cdn_registry.push_model(
        "ns/tiny", "q8", [("model", tiny_llama_gguf.read_bytes()), ("template", TEMPLATE_V1)]
    )
    v1 = hanzo_json("model:pull", "--insecure", f"ollama:{name}", "--json")
    bigger = os.urandom(4 << 20)
    manifest = cdn_registry.registry.push_ollama_model(
        "ns/tiny", "q8", [("model", bigger), ("template", TEMPLATE_V1)]
    )
    for blob in (manifest["config"], *manifest["layers"]):
        cdn_registry.publish(blob["digest"])
    new_blob = manifest["layers"][0]["digest"]
    cdn_path = cdn_registry.cdn_path(new_blob)
    cdn_registry.publish(new_blob, throttle=1 << 20)  # ~4 s: time to kill it mid-way

    update = subprocess.Popen(
        [sys.executable, "-m", "hanzo_cli", "model:update", "--all", "--insecure", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    partial = Store.default().partial_path(new_blob)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and update.poll() is None:
        if partial.exists() and cdn_registry.cdn.bytes_sent(cdn_path) > (1 << 20):
            break
        time.sleep(0.05)
    update.send_signal(signal.SIGKILL)
    update.wait()
    assert partial.exists()

    # The old version is still the model, whole and verified; the check still says outdated.
    [listed] = hanzo_json("model:list", "--json")
    assert listed["digest"] == v1["digest"]
    for f in listed["files"]:
        assert hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest() == f["digest"].split(":")[1]
    [row] = hanzo_json("model:outdated", "--insecure", "--json")
    assert row["status"] == "outdated"

    sent_before = cdn_registry.cdn.bytes_sent(cdn_path)
    cdn_registry.publish(new_blob)  # full speed now
    [result] = hanzo_json("model:update", "--all", "--insecure", "--json")
    assert result["action"] == "updated"
    assert cdn_registry.cdn.bytes_sent(cdn_path) - sent_before < len(bigger)  # resumed, not restarted
    [listed] = hanzo_json("model:list", "--json")
    assert Path(listed["path"]).read_bytes() == bigger
