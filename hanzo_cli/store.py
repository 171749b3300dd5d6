"""hanzo's model store, in Ollama's on-disk layout.

::

    <root>/blobs/sha256-<64 hex>                        content-addressed files
    <root>/manifests/<host>/<namespace>/<model>/<tag>   Ollama/OCI manifest JSON

Because the layout is Ollama's, ``OLLAMA_MODELS`` can point at a hanzo store (and hanzo's Ollama
provider writes straight into ``$OLLAMA_MODELS``). Every write is atomic (temp file, fsync,
rename); every name and digest is validated before a path is built from it, because manifests
and names come from servers we do not trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hanzo_cli.errors import HanzoError, ModelNotFoundError
from hanzo_cli.fsutil import atomic_write, fsync_dir

if TYPE_CHECKING:
    from collections.abc import Mapping

    import httpx

    from hanzo_cli.output import ProgressBar

DIGEST_RE = re.compile(r"^sha256[:-]([0-9a-f]{64})$")
DEFAULT_HOST = "registry.ollama.ai"
#: The host of models imported by hand (``hanzo model:import``): ``manifests/local/…``.
LOCAL_HOST = "local"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
OLLAMA_LAYER_PREFIX = "application/vnd.ollama.image."
MODEL_MEDIA_TYPE = OLLAMA_LAYER_PREFIX + "model"
#: Refuse manifests that claim absurd sizes (a hostile server must not make us preallocate 1 EB).
MAX_BLOB_SIZE = 1 << 42  # 4 TiB
MAX_MANIFEST_BYTES = 4 << 20

# Ollama's name grammar (types/model/name.go): first character alphanumeric or "_"; namespaces
# have no "."; only the host may contain ":" (a port).
_HOST_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}$")
_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,79}$")
_MODEL_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$")
_TAG_RE = _MODEL_RE


def digest_hex(digest: object) -> str:
    """The 64 hex characters of a ``sha256:<hex>`` / ``sha256-<hex>`` digest, or an error."""
    match = DIGEST_RE.match(digest) if isinstance(digest, str) else None
    if not match:
        raise HanzoError(f"invalid blob digest {str(digest)[:80]!r}")
    return match.group(1)


@dataclass(frozen=True)
class ManifestName:
    """A validated ``host/namespace/model:tag``; safe to turn into a path."""

    host: str
    namespace: str
    model: str
    tag: str

    def __post_init__(self) -> None:
        for value, pattern, what in (
            (self.host, _HOST_RE, "host"),
            (self.namespace, _NAMESPACE_RE, "namespace"),
            (self.model, _MODEL_RE, "model name"),
            (self.tag, _TAG_RE, "tag"),
        ):
            if not pattern.match(value):
                raise HanzoError(f"invalid {what} {value[:100]!r} in model name")

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        host: str = DEFAULT_HOST,
        namespace: str = DEFAULT_NAMESPACE,
        tag: str = DEFAULT_TAG,
    ) -> ManifestName:
        """Parse ``[scheme://][host/][namespace/]model[:tag]`` like Ollama does.

        The tag is split at the last ``:`` only when it comes after the last ``/`` (a ``:``
        before that belongs to the host's port). A ``@digest`` suffix is not supported.
        """
        s = text.strip()
        if "@" in s:
            raise HanzoError(f"model name {text!r}: pulling by @digest is not supported")
        if "://" in s:
            s = s.split("://", 1)[1]
        if s.rfind(":") > s.rfind("/"):
            s, _, tag = s.rpartition(":")
        parts = s.split("/")
        if len(parts) == 1:
            model = parts[0]
        elif len(parts) == 2:
            namespace, model = parts
        elif len(parts) == 3:
            host, namespace, model = parts
        else:
            raise HanzoError(f"invalid model name {text!r}: expected [host/][namespace/]model[:tag]")
        return cls(host, namespace, model, tag)

    def display(self, default_host: str = DEFAULT_HOST) -> str:
        """The short spelling Ollama prints: defaults are left out."""
        if self.host.lower() == default_host.lower():
            if self.namespace.lower() == DEFAULT_NAMESPACE:
                return f"{self.model}:{self.tag}"
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def repository(self) -> str:
        return f"{self.namespace}/{self.model}"

    def relpath(self) -> Path:
        return Path(self.host, self.namespace, self.model, self.tag)


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str
    size: int

    @property
    def kind(self) -> str:
        if self.media_type.startswith(OLLAMA_LAYER_PREFIX):
            return self.media_type[len(OLLAMA_LAYER_PREFIX) :]
        return "config" if self.media_type == CONFIG_MEDIA_TYPE else self.media_type


@dataclass(frozen=True)
class Manifest:
    config: Layer
    layers: tuple[Layer, ...]
    raw: bytes

    @property
    def blobs(self) -> tuple[Layer, ...]:
        return (self.config, *self.layers)

    @property
    def total_size(self) -> int:
        return sum(layer.size for layer in self.blobs)

    @property
    def digest(self) -> str:
        """The manifest's own digest (what Ollama lists as the model's ID)."""
        return "sha256:" + hashlib.sha256(self.raw).hexdigest()

    def model_layer(self) -> Layer | None:
        return next((lay for lay in self.layers if lay.media_type == MODEL_MEDIA_TYPE), None)


def parse_manifest(raw: bytes) -> Manifest:
    """Validate an image manifest from a server or disk; refuse anything hostile before use."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise HanzoError("manifest is too large")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise HanzoError(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HanzoError("manifest is not a JSON object")
    if data.get("schemaVersion") != 2:
        raise HanzoError(f"unsupported manifest schemaVersion {data.get('schemaVersion')!r}")

    def layer(obj: Any, where: str) -> Layer:
        if not isinstance(obj, dict):
            raise HanzoError(f"manifest {where} is not an object")
        media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
        if not isinstance(media_type, str) or not media_type or len(media_type) > 255:
            raise HanzoError(f"manifest {where} has an invalid mediaType")
        digest_hex(digest)
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_BLOB_SIZE:
            raise HanzoError(f"manifest {where} has an invalid size {size!r}")
        return Layer(media_type, "sha256:" + digest_hex(digest), size)

    config = layer(data.get("config"), "config")
    layers_raw = data.get("layers")
    if not isinstance(layers_raw, list) or len(layers_raw) > 1000:
        raise HanzoError("manifest has no valid layers list")
    layers = tuple(layer(obj, f"layer {i}") for i, obj in enumerate(layers_raw))
    manifest = Manifest(config, layers, raw)
    if manifest.total_size > MAX_BLOB_SIZE:
        raise HanzoError("manifest claims an impossible total size")
    return manifest


class Store:
    """Blobs and manifests under one root, in Ollama's layout."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def default(cls) -> Store:
        from hanzo_cli.constants import store_dir

        return cls(store_dir())

    @property
    def blobs_dir(self) -> Path:
        return self.root / "blobs"

    @property
    def manifests_dir(self) -> Path:
        return self.root / "manifests"

    # -- blobs -------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blobs_dir / f"sha256-{digest_hex(digest)}"

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        """Whether the blob is there with this size (cheap: what a manifest write checks)."""
        try:
            st = self.blob_path(digest).stat()
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def check_blob(self, digest: str, size: int | None = None) -> bool:
        """Whether the blob is there and verified: right size, and content hashing to its digest
        (hashed once; remembered until the file changes). Ollama, another hanzo or a user may have
        put it there, so a wrong one is moved to ``.hanzo-corrupt/`` (outside ``blobs/``) and
        reported as missing, to be fetched again."""
        from hanzo_cli.verified import set_aside, verify_existing

        path = self.blob_path(digest)
        if not path.exists():
            return False
        if verify_existing(path, digest_hex(digest), size):
            return True
        set_aside(path, self.root / ".hanzo-corrupt", "does not match its digest or size")
        return False

    def pull_blob(
        self,
        digest: str,
        url: str,
        *,
        size: int | None = None,
        headers: Mapping[str, str] | None = None,
        client: httpx.Client | None = None,
        desc: str | None = None,
        bar: ProgressBar | None = None,
        before_fetch: Callable[[], None] | None = None,
    ) -> Path:
        """Download a blob into the store (resumable, verified), unless a verified copy is there
        (``before_fetch``: see :func:`hanzo_cli.download.download`)."""
        from hanzo_cli.download import download
        from hanzo_cli.verified import record_verified

        path = self.blob_path(digest)
        if self.check_blob(digest, size):
            return path
        result = download(
            url,
            path,
            size=size,
            sha256=digest_hex(digest),
            headers=headers,
            client=client,
            desc=desc or f"pulling {digest_hex(digest)[:12]}",
            bar=bar,
            partial=self.partial_path(digest),
            before_fetch=before_fetch,
        )
        record_verified(path, result.sha256)
        return path

    def partial_path(self, digest: str) -> Path:
        """Where a blob's download in progress lives (with its ``.json`` state and ``.lock``).

        Outside ``blobs/``: ``ollama serve`` removes every file there whose name is not a digest,
        its own partial downloads included, so a shared ``OLLAMA_MODELS`` would lose our resume
        state. Same file system as ``blobs/``, so finishing is an atomic rename.
        """
        return self.root / ".hanzo-partial" / f"sha256-{digest_hex(digest)}"

    def add_blob_file(self, src: Path) -> tuple[str, int]:
        """Copy a local file into the store (hashing as it copies); return (digest, size)."""
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        sha = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(prefix=".import-", suffix="-partial", dir=self.blobs_dir)
        try:
            with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
                while chunk := fin.read(1 << 20):
                    sha.update(chunk)
                    fout.write(chunk)
                    size += len(chunk)
                fout.flush()
                os.fsync(fout.fileno())
            digest = "sha256:" + sha.hexdigest()
            dest = self.blob_path(digest)
            if dest.exists() and dest.stat().st_size == size:
                Path(tmp).unlink()
            else:
                os.chmod(tmp, 0o644)
                os.replace(tmp, dest)
                fsync_dir(self.blobs_dir)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest, size

    def add_blob_bytes(self, data: bytes) -> tuple[str, int]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if not (path.exists() and path.stat().st_size == len(data)):
            atomic_write(path, data)
        return digest, len(data)

    # -- manifests ---------------------------------------------------------------------------

    def lock(self) -> Any:
        """Store-wide lock held while manifests are written or blobs collected."""
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / ".hanzo-store.lock"))

    def manifest_path(self, name: ManifestName) -> Path:
        return self.manifests_dir / name.relpath()

    def find_manifest(self, name: ManifestName) -> tuple[ManifestName, Path] | None:
        """The manifest for ``name``; names compare case-insensitively, as in Ollama."""
        exact = self.manifest_path(name)
        if exact.is_file():
            return name, exact
        wanted = tuple(p.lower() for p in name.relpath().parts)
        for found, path in self.manifests():
            if tuple(p.lower() for p in found.relpath().parts) == wanted:
                return found, path
        return None

    def manifests(self) -> Iterator[tuple[ManifestName, Path]]:
        """Every valid manifest path in the store (invalid names are skipped, not trusted)."""
        root = self.manifests_dir
        if not root.is_dir():
            return
        for path in sorted(root.glob("*/*/*/*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            try:
                name = ManifestName(*path.relative_to(root).parts)
            except HanzoError:
                continue
            yield name, path

    def read_manifest(self, path: Path) -> Manifest:
        return parse_manifest(path.read_bytes())

    def write_manifest(self, name: ManifestName, raw: bytes, *, prune: bool = True) -> ManifestName:
        """Validate and atomically write a manifest whose blobs are all present, over any manifest
        of the same name (in whatever spelling it was stored); then, with ``prune``, remove the
        blobs only the replaced manifest used (Ollama keeps them when OLLAMA_NOPRUNE is set: the
        Ollama provider decides). Returns the name as stored."""
        manifest = parse_manifest(raw)
        with self.lock():
            for layer in manifest.blobs:
                if not self.has_blob(layer.digest, layer.size):
                    raise HanzoError(f"blob {layer.digest} of {name.display()} is missing")
            found = self.find_manifest(name)
            stored = found[0] if found else name
            replaced = self.blob_digests(found[1]) if found else set()
            atomic_write(self.manifest_path(stored), raw)
            if prune:
                self._collect(replaced - {layer.digest for layer in manifest.blobs})
        return stored

    def blob_digests(self, path: Path) -> set[str]:
        """The digests a stored manifest references; none when it is unreadable (a half-written
        or foreign file must not stop it being replaced or deleted)."""
        try:
            return {layer.digest for layer in self.read_manifest(path).blobs}
        except (HanzoError, OSError):
            return set()

    def delete(self, name: ManifestName, *, prune: bool = True) -> list[Path]:
        """Remove a manifest, then (with ``prune``) its blobs that no other manifest references."""
        with self.lock():
            found = self.find_manifest(name)
            if found is None:
                raise ModelNotFoundError(f"model {name.display()!r} not found")
            _, path = found
            mine = self.blob_digests(path)
            path.unlink()
            self._remove_empty_parents(path.parent)
            return [path, *(self._collect(mine) if prune else [])]

    def collect(self, digests: set[str]) -> list[Path]:
        """Remove those of ``digests`` that no manifest references any more."""
        with self.lock():
            return self._collect(digests)

    def _collect(self, digests: set[str]) -> list[Path]:
        still_used: set[str] = set()
        for _, other in self.manifests():
            try:
                still_used.update(layer.digest for layer in self.read_manifest(other).blobs)
            except (HanzoError, OSError):
                continue
        removed = []
        for digest in sorted(digests - still_used):
            blob = self.blob_path(digest)
            if blob.exists():
                blob.unlink()
                removed.append(blob)
        return removed

    def _remove_empty_parents(self, folder: Path) -> None:
        while folder != self.manifests_dir and folder.is_relative_to(self.manifests_dir):
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent
