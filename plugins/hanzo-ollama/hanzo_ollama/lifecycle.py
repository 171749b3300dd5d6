"""The Ollama provider's model lifecycle: what a name points at on its registry now, and pins.

A pin is a pull by manifest digest, ``NAME@sha256:<hex>`` (as ``docker pull name@digest``): the
manifest is fetched by digest, refused unless its bytes hash to that digest, and stored under the
name's tag like any pull. The pin itself is recorded in ``<store>/.hanzo-pins.json`` (beside
``blobs/`` and ``manifests/``, where ``ollama serve`` does not look), so ``model:update`` leaves the
model alone while the stored manifest is still the pinned one. A later pull by tag drops the pin.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hanzo_cli.api import (
    LOCAL_HOST,
    HanzoError,
    IntegrityError,
    ManifestName,
    ModelInfo,
    PullOptions,
    RemoteFile,
    RemoteVersion,
    Store,
    atomic_write,
    digest_hex,
    parse_manifest,
)

PINS_FILE = ".hanzo-pins.json"


def split_digest(text: str) -> tuple[str, str | None]:
    """``name@sha256:<hex>`` -> (name, ``sha256:<hex>``); a name without ``@`` -> (name, None)."""
    name, at, digest = text.strip().partition("@")
    if not at:
        return name, None
    if not name:
        raise HanzoError(f"{text!r} names a digest but no model")
    return name, "sha256:" + digest_hex(digest)


def check_manifest_digest(raw: bytes, pinned: str, display: str) -> None:
    """Refuse a manifest whose bytes are not the pinned digest (a registry or proxy that lies)."""
    actual = "sha256:" + hashlib.sha256(raw).hexdigest()
    if actual != pinned:
        raise IntegrityError(f"{display}: the registry returned manifest {actual}, not the pinned {pinned}")


def _pin_key(name: ManifestName) -> str:
    return "/".join(name.relpath().parts).lower()  # names compare case-insensitively, as in Ollama


def read_pins(store: Store) -> dict[str, str]:
    """Pinned name -> manifest digest; an unreadable file pins nothing (it is only a hint)."""
    try:
        data = json.loads((store.root / PINS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def set_pin(store: Store, name: ManifestName, digest: str | None) -> None:
    """Record (or with None, drop) the pin of ``name``, under the store's lock."""
    with store.lock():
        pins = read_pins(store)
        key = _pin_key(name)
        if digest is None:
            if pins.pop(key, None) is None:
                return
        else:
            pins[key] = digest
        atomic_write(store.root / PINS_FILE, (json.dumps(pins, indent=2, sort_keys=True) + "\n").encode())


def is_pinned(store: Store, model: ModelInfo) -> bool:
    """Pinned while the stored manifest is still the pinned one (``ollama pull`` may have moved it)."""
    try:
        name = ManifestName.parse(model.name)
    except HanzoError:
        return False
    return model.digest is not None and read_pins(store).get(_pin_key(name)) == model.digest


def remote_version(store: Store, model: ModelInfo, options: PullOptions) -> RemoteVersion | None:
    """The manifest the model's tag points at now: one GET of the manifest (the bytes give both the
    digest and the layers, so nothing else is asked)."""
    import httpx

    from hanzo_ollama.registry import RegistryClient, RegistryName

    if ManifestName.parse(model.name).host == LOCAL_HOST:
        return None  # imported by hand: no registry to ask
    target = RegistryName.parse(model.name, insecure=options.insecure)
    try:
        with httpx.Client(timeout=httpx.Timeout(30.0), follow_redirects=True) as client:
            raw = RegistryClient(target, client).fetch_manifest()
    except httpx.HTTPError as exc:
        raise HanzoError(f"cannot reach registry {target.name.host}: {exc or type(exc).__name__}") from None
    manifest = parse_manifest(raw)
    have = {f.digest for f in model.files if f.digest and Path(f.path).exists()}
    missing = [
        layer
        for layer in {layer.digest: layer for layer in manifest.blobs}.values()
        if layer.digest not in have and not store.has_blob(layer.digest, layer.size)
    ]
    files = tuple(RemoteFile(layer.kind, layer.size, digest_hex(layer.digest)) for layer in manifest.blobs)
    return RemoteVersion(manifest.digest, files, sum(layer.size for layer in missing))
