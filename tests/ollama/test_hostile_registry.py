"""Registries that misbehave: hostile manifests, impossible sizes, token auth.

A real registry refuses to store these manifests, so the ``fileserver`` fixture plays the registry
here, serving the documented routes (``/v2/<repo>/manifests/<tag>``, ``/v2/<repo>/blobs/<digest>``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hanzo_ollama.provider import OllamaProvider

from hanzo_cli.errors import DiskFullError, HanzoError
from hanzo_cli.providers import PullOptions
from hanzo_cli.store import MANIFEST_MEDIA_TYPE, Store
from tests.fixtures.fileserver import FileServer, Handler
from tests.helpers import assert_one_line_error, run_hanzo

CONFIG = b'{"model_format":"gguf"}'
WEIGHTS = b"GGUF" + bytes(1000)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest(**layer: Any) -> dict[str, Any]:
    """A valid two-blob manifest, with the model layer's fields overridden by ``layer``."""
    return {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": sha(CONFIG),
            "size": len(CONFIG),
        },
        "layers": [
            {
                "mediaType": "application/vnd.ollama.image.model",
                "digest": sha(WEIGHTS),
                "size": len(WEIGHTS),
                **layer,
            }
        ],
    }


def serve_registry(server: FileServer, body: bytes, headers: dict[str, str] | None = None) -> str:
    """Serve ``body`` as the manifest of ns/m:v1 and the two valid blobs; returns the model name."""

    def route(h: Handler) -> None:
        h.send_bytes(body, headers=headers, content_type=MANIFEST_MEDIA_TYPE)

    server.add_route("/v2/ns/m/manifests/v1", route)
    for data in (CONFIG, WEIGHTS):
        server.add_file(f"/v2/ns/m/blobs/{sha(data)}", data)
    return f"127.0.0.1:{server.port}/ns/m:v1"


def pull(name: str) -> None:
    OllamaProvider().pull(name, PullOptions(insecure=True))


HOSTILE = {
    "not JSON": b"<html>hello</html>",
    "a JSON list": b"[]",
    "schema version 1": json.dumps({**manifest(), "schemaVersion": 1}).encode(),
    "path traversal digest": json.dumps(manifest(digest="sha256:../../x")).encode(),
    "traversal in hex": json.dumps(manifest(digest="sha256:" + "../" * 21 + "a")).encode(),
    "sha512 digest": json.dumps(manifest(digest="sha512:" + "a" * 128)).encode(),
    "upper-case hex": json.dumps(manifest(digest=sha(WEIGHTS).upper().replace("SHA256", "sha256"))).encode(),
    "negative size": json.dumps(manifest(size=-1)).encode(),
    "huge size": json.dumps(manifest(size=1 << 60)).encode(),
    "string size": json.dumps(manifest(size="1000")).encode(),
    "boolean size": json.dumps(manifest(size=True)).encode(),
    "no layers": json.dumps({**manifest(), "layers": None}).encode(),
    "layer not an object": json.dumps({**manifest(), "layers": ["sha256:" + "0" * 64]}).encode(),
    "no media type": json.dumps(manifest(mediaType=None)).encode(),
}


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_manifest_is_refused_before_anything_is_written(
    fileserver: FileServer, tmp_path: Path, body: bytes
) -> None:
    name = serve_registry(fileserver, body)
    with pytest.raises(HanzoError):
        pull(name)
    assert not Store.default().root.exists()
    assert [r.path for r in fileserver.requests] == ["/v2/ns/m/manifests/v1"]  # no blob was asked for
    assert not list(tmp_path.parent.glob("x"))  # nothing escaped the store either


def test_hostile_manifest_through_the_cli_is_one_error_line(fileserver: FileServer) -> None:
    name = serve_registry(fileserver, json.dumps(manifest(digest="sha256:../../x")).encode())
    proc = run_hanzo("model:pull", "--insecure", f"ollama:{name}")
    assert_one_line_error(proc, "invalid blob digest")
    assert not Store.default().root.exists()


def test_manifest_that_does_not_match_its_claimed_digest_is_refused(fileserver: FileServer) -> None:
    body = json.dumps(manifest()).encode()
    name = serve_registry(fileserver, body, headers={"Docker-Content-Digest": sha(body + b" ")})
    with pytest.raises(HanzoError, match="does not match its digest"):
        pull(name)
    assert not Store.default().root.exists()


def test_oversized_manifest_is_refused_unread(fileserver: FileServer) -> None:
    name = serve_registry(fileserver, b" " * (5 << 20))
    with pytest.raises(HanzoError, match="too large"):
        pull(name)


def test_a_model_larger_than_the_free_disk_is_refused_before_downloading(fileserver: FileServer) -> None:
    """3 TiB passes the sanity limit on sizes, but no test machine has that much space free."""
    name = serve_registry(fileserver, json.dumps(manifest(size=3 << 40)).encode())
    with pytest.raises(DiskFullError, match="not enough disk space"):
        pull(name)
    assert [r.path for r in fileserver.requests] == ["/v2/ns/m/manifests/v1"]
    assert not Store.default().blobs_dir.exists()


def test_bearer_token_challenge_is_answered(fileserver: FileServer) -> None:
    """A registry with token auth (Docker Hub, ghcr.io): 401 + challenge, anonymous token, retry."""
    body = json.dumps(manifest()).encode()
    auth = {"Authorization": "Bearer t0ken"}

    def manifest_route(h: Handler) -> None:
        if h.headers.get("Authorization") != auth["Authorization"]:
            realm = fileserver.url("/token")
            challenge = f'Bearer realm="{realm}",service="test-registry",scope="repository:ns/m:pull"'
            h.send_status(401, headers={"WWW-Authenticate": challenge})
            return
        h.send_bytes(body, content_type=MANIFEST_MEDIA_TYPE)

    def token_route(h: Handler) -> None:
        ok = "service=test-registry" in h.query and "scope=repository%3Ans%2Fm%3Apull" in h.query
        h.send_bytes(json.dumps({"token": "t0ken"} if ok else {}).encode(), content_type="application/json")

    fileserver.add_route("/v2/ns/m/manifests/v1", manifest_route)
    fileserver.add_route("/token", token_route)
    for data in (CONFIG, WEIGHTS):
        fileserver.add_file(f"/v2/ns/m/blobs/{sha(data)}", data, require_headers=auth)

    info = OllamaProvider().pull(f"127.0.0.1:{fileserver.port}/ns/m:v1", PullOptions(insecure=True))

    assert info.path is not None and info.path.read_bytes() == WEIGHTS


def test_registry_without_a_usable_challenge_is_a_clear_error(fileserver: FileServer) -> None:
    fileserver.add_file("/v2/ns/m/manifests/v1", b"", status=401)
    proc = run_hanzo("model:pull", "--insecure", f"ollama:127.0.0.1:{fileserver.port}/ns/m:v1")
    assert_one_line_error(proc, "requires authentication")
