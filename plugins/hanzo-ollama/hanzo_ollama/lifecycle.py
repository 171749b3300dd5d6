"""The Ollama provider's model lifecycle: what a name points at on its registry now, and pins.

A pin is a pull by manifest digest, ``NAME@sha256:<hex>`` (as ``docker pull name@digest``): the
manifest is fetched by digest, refused unless its bytes hash to that digest, and stored under the
name's tag like any pull. The pin itself is recorded in ``<store>/.hanzo-pins.json`` (beside
``blobs/`` and ``manifests/``, where ``ollama serve`` does not look), so ``model:update`` leaves the
model alone while the stored manifest is still the pinned one. A later pull by tag drops the pin.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from hanzo_cli.api import (
    LOCAL_HOST,
    HanzoError,
    IntegrityError,
    ManifestName,
    ModelInfo,
    PullOptions,
    Reclaimable,
    RemoteFile,
    RemoteVersion,
    Store,
    atomic_write,
    digest_hex,
    info,
    lock_is_held,
    parse_manifest,
    remove_unless_locked,
    ssl_context,
)

if TYPE_CHECKING:
    import httpx

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


@functools.cache
def _shared_client() -> httpx.Client:
    """One client for every check of a process: checks run in parallel threads (httpx clients are
    thread-safe), and a client per check would spend more CPU on its TLS set-up than on the request."""
    import httpx

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    return httpx.Client(
        timeout=httpx.Timeout(30.0), follow_redirects=True, limits=limits, verify=ssl_context()
    )


def remote_version(store: Store, model: ModelInfo, options: PullOptions) -> RemoteVersion | None:
    """The manifest the model's tag points at now: one GET of the manifest (the bytes give both the
    digest and the layers, so nothing else is asked), from where a pull would take it: the first of
    the registry's mirrors that has it, else the registry. (Asking the registry while pulls use a
    mirror's copy would report an update that ``model:update`` then never brings.)"""
    import httpx

    from hanzo_ollama.registry import RegistryName, RegistrySources

    if ManifestName.parse(model.name).host == LOCAL_HOST:
        return None  # imported by hand: no registry to ask
    target = RegistryName.parse(model.name, insecure=options.insecure)
    try:
        raw = RegistrySources(target, _shared_client(), info).fetch_manifest()
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


# -- disk: model:du / model:prune -------------------------------------------------------------------

#: An unreferenced blob younger than this is kept: a pull (ours, or Ollama's own) may be about to
#: write the manifest that names it (as ``git gc`` keeps young loose objects).
ORPHAN_GRACE_SECONDS = 3600.0
_BLOB_RE = re.compile(r"^sha256-([0-9a-f]{64})$")
_INTENT_PREFIX = "pulling-"


def _partial_dir(store: Store) -> Path:
    return store.partial_path("sha256:" + "0" * 64).parent


@contextmanager
def pulling(store: Store, digests: Iterable[str]) -> Iterator[None]:
    """While a pull runs, record the blobs its manifest names, so that ``model:prune`` in another
    process keeps them until the manifest is written. The record is held under a file lock: a
    record whose lock is free is a crashed pull's, and means nothing."""
    from filelock import FileLock

    folder = _partial_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / f"{_INTENT_PREFIX}{uuid.uuid4().hex}.json"
    held = FileLock(str(record.with_suffix(".lock")))
    held.acquire()
    try:
        with store.lock():  # prune scans under this lock: it sees the record, or ran before it
            atomic_write(record, json.dumps(sorted(set(digests))).encode())
        yield
    finally:
        record.unlink(missing_ok=True)
        held.release()
        Path(held.lock_file).unlink(missing_ok=True)


def _in_use_by_pulls(store: Store) -> set[str]:
    kept: set[str] = set()
    for record in _partial_dir(store).glob(f"{_INTENT_PREFIX}*.json"):
        if not lock_is_held(record.with_suffix(".lock")):
            continue  # a crashed pull's record
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, list):
            kept.update(d for d in data if isinstance(d, str))
    return kept


def _scan(store: Store, provider: str, partials_older_than: float) -> list[Reclaimable]:
    """What no model needs; called with the store's lock held."""
    items: list[Reclaimable] = []
    now = time.time()
    used: set[str] = set()
    readable = True
    for _, path in store.manifests():
        try:
            used.update(layer.digest for layer in store.read_manifest(path).blobs)
        except (HanzoError, OSError):
            readable = False  # its blobs are unknown: call nothing an orphan
    if readable and store.blobs_dir.is_dir():
        used |= _in_use_by_pulls(store)
        for blob in sorted(store.blobs_dir.iterdir()):
            match = _BLOB_RE.match(blob.name)  # Ollama's own "-partial" downloads never match
            if not match or "sha256:" + match.group(1) in used:
                continue
            st = blob.stat()
            if now - st.st_mtime >= ORPHAN_GRACE_SECONDS:
                items.append(Reclaimable(provider, blob, st.st_size, "orphan blob"))
    folder = _partial_dir(store)
    groups: dict[str, list[Path]] = {}
    for f in folder.glob("sha256-*") if folder.is_dir() else ():
        groups.setdefault(f.name.split(".", 1)[0], []).append(f)
    for base, files in sorted(groups.items()):
        lock = folder / f"{base}.lock"
        newest = max(f.stat().st_mtime for f in files)
        if now - newest >= partials_older_than and not lock_is_held(lock):
            items.extend(Reclaimable(provider, f, f.stat().st_size, "stale partial") for f in sorted(files))
    return items


def reclaimable(store: Store, provider: str, partials_older_than: float) -> list[Reclaimable]:
    if not store.root.is_dir():
        return []
    with store.lock():
        return _scan(store, provider, partials_older_than)


def reclaim(
    store: Store, provider: str, items: Sequence[Reclaimable], partials_older_than: float
) -> list[Reclaimable]:
    """Remove what is still reclaimable, under the store's lock (no pull registers meanwhile)."""
    wanted = {item.path for item in items}
    removed: list[Reclaimable] = []
    if not store.root.is_dir():
        return removed
    with store.lock():
        partials: dict[Path, list[Reclaimable]] = {}
        for item in _scan(store, provider, partials_older_than):
            if item.path not in wanted:
                continue
            if item.reason == "stale partial":
                base = item.path.with_name(item.path.name.split(".", 1)[0])
                partials.setdefault(base, []).append(item)
            else:
                item.path.unlink(missing_ok=True)
                removed.append(item)
        for base, group in partials.items():
            lock = base.with_name(base.name + ".lock")
            if remove_unless_locked([item.path for item in group], lock):  # not one resumed since the scan
                removed.extend(group)
                lock.unlink(missing_ok=True)
    return removed
    with store.lock():
        for item in _scan(store, provider, partials_older_than):
            if item.path not in wanted:
                continue
            if item.reason == "stale partial":
                lock = item.path.parent / (item.path.name.split(".", 1)[0] + ".lock")
                if not remove_unless_locked([item.path], lock):  # a download started since the scan
                    continue
            else:
                item.path.unlink(missing_ok=True)
            removed.append(item)
    return removed
