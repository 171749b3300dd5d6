"""The Ollama-layout store: names, manifests, atomic writes, garbage collection."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hanzo_cli.errors import HanzoError, NotFoundError
from hanzo_cli.manifest_models import manifest_model_info
from hanzo_cli.store import (
    CONFIG_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    MODEL_MEDIA_TYPE,
    ManifestName,
    Store,
    digest_hex,
    parse_manifest,
)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("all-minilm", ("registry.ollama.ai", "library", "all-minilm", "latest")),
        (
            "dengcao/Qwen3-Embedding-8B:Q5_K_M",
            ("registry.ollama.ai", "dengcao", "Qwen3-Embedding-8B", "Q5_K_M"),
        ),
        ("hf.co/user/repo:Q4_K_M", ("hf.co", "user", "repo", "Q4_K_M")),
        ("127.0.0.1:5000/team/qwen3-embed:q8", ("127.0.0.1:5000", "team", "qwen3-embed", "q8")),
        ("127.0.0.1:5000/team/qwen3-embed", ("127.0.0.1:5000", "team", "qwen3-embed", "latest")),
        ("http://127.0.0.1:5000/team/m:t", ("127.0.0.1:5000", "team", "m", "t")),
    ],
)
def test_ollama_name_grammar(text: str, parts: tuple[str, str, str, str]) -> None:
    assert ManifestName.parse(text) == ManifestName(*parts)


@pytest.mark.parametrize(
    "text",
    [
        "../x",
        "a/../../b",
        "ns.dot/model",
        "a/b/c/d",
        "-model",
        "model:-tag",
        "x/y:a/b",
        "m@sha256:00",
        "a//b",
        "",
    ],
)
def test_invalid_names_are_refused(text: str) -> None:
    with pytest.raises(HanzoError):
        ManifestName.parse(text)


@given(st.text(min_size=1, max_size=40))
def test_parsed_names_are_safe_paths(text: str) -> None:
    try:
        name = ManifestName.parse(text)
    except HanzoError:
        return
    for part in name.relpath().parts:
        assert part not in ("", ".", "..") and "/" not in part and "\x00" not in part


def test_digest_validation() -> None:
    good = "sha256:" + "a" * 64
    assert digest_hex(good) == "a" * 64
    assert digest_hex("sha256-" + "b" * 64) == "b" * 64
    for bad in ["sha256:../../x", "sha256:" + "A" * 64, "md5:" + "a" * 32, "sha256:" + "a" * 63, 5, None]:
        with pytest.raises(HanzoError):
            digest_hex(bad)  # type: ignore[arg-type]


def _manifest(store: Store, payloads: dict[str, bytes]) -> bytes:
    layers = []
    for kind, data in payloads.items():
        digest, size = store.add_blob_bytes(data)
        layers.append({"mediaType": f"application/vnd.ollama.image.{kind}", "digest": digest, "size": size})
    cdigest, csize = store.add_blob_bytes(b'{"model_format":"gguf"}')
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": cdigest, "size": csize},
            "layers": layers,
        }
    ).encode()


def test_write_list_info_delete_keeps_shared_blobs(tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    a = ManifestName.parse("ns/a:v1")
    b = ManifestName.parse("ns/b:v1")
    store.write_manifest(a, _manifest(store, {"model": b"GGUF-shared", "license": b"MIT"}))
    store.write_manifest(b, _manifest(store, {"model": b"GGUF-shared", "template": b"{{ .Prompt }}"}))
    assert [n for n, _ in store.manifests()] == [a, b]

    info = manifest_model_info(store, "test", a, store.manifest_path(a))
    assert info.name == "ns/a:v1"
    assert info.path == store.blob_path("sha256:" + hashlib.sha256(b"GGUF-shared").hexdigest())
    assert info.digest == "sha256:" + hashlib.sha256(store.manifest_path(a).read_bytes()).hexdigest()
    assert info.size == sum(f.size for f in info.files)

    removed = store.delete(ManifestName.parse("NS/A:V1"))  # names compare case-insensitively
    assert store.manifest_path(a) not in [p for _, p in store.manifests()]
    assert info.path is not None and info.path.exists(), "blob shared with b must survive"
    assert not store.blob_path("sha256:" + hashlib.sha256(b"MIT").hexdigest()).exists()
    assert len(removed) == 2  # the manifest and the license blob (config is shared too)
    with pytest.raises(NotFoundError):
        store.delete(a)


def test_manifest_with_missing_blob_is_not_written(tmp_path: Path) -> None:
    store = Store(tmp_path)
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": "sha256:" + "0" * 64, "size": 2},
            "layers": [],
        }
    ).encode()
    with pytest.raises(HanzoError, match="missing"):
        store.write_manifest(ManifestName.parse("m"), raw)
    assert not store.manifest_path(ManifestName.parse("m")).exists()


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"schemaVersion": 1}',
        json.dumps({"schemaVersion": 2, "config": {}, "layers": []}).encode(),
        json.dumps(
            {
                "schemaVersion": 2,
                "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": "sha256:../../x", "size": 1},
                "layers": [],
            }
        ).encode(),
        json.dumps(
            {
                "schemaVersion": 2,
                "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": "sha256:" + "0" * 64, "size": -1},
                "layers": [],
            }
        ).encode(),
        json.dumps(
            {
                "schemaVersion": 2,
                "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": "sha256:" + "0" * 64, "size": 1},
                "layers": [{"mediaType": MODEL_MEDIA_TYPE, "digest": "sha256:" + "1" * 64, "size": 1 << 60}],
            }
        ).encode(),
        json.dumps(
            {
                "schemaVersion": 2,
                "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": "sha256:" + "0" * 64, "size": True},
                "layers": [],
            }
        ).encode(),
    ],
)
def test_hostile_manifests_are_refused(raw: bytes) -> None:
    with pytest.raises(HanzoError):
        parse_manifest(raw)


def test_add_blob_file_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    src = tmp_path / "x.bin"
    src.write_bytes(b"x" * 3_000_000)
    store = Store(tmp_path / "s")
    digest, size = store.add_blob_file(src)
    assert digest == "sha256:" + hashlib.sha256(src.read_bytes()).hexdigest() and size == 3_000_000
    assert store.add_blob_file(src) == (digest, size)
    assert sorted(p.name for p in store.blobs_dir.iterdir()) == [f"sha256-{digest_hex(digest)}"]
