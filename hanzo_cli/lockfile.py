"""Lock files (``hanzo.lock``): exactly which bytes of which models a machine should have.

Like a pip hash-checked requirements file: ``model:lock`` writes, for each model, its provider, its
name, the version it resolved to (an Ollama manifest digest, a Hugging Face commit) and every file
with its size and sha256; ``model:pull --lock`` pulls each model at exactly that version and refuses
when the source no longer has it or serves other bytes; ``model:lock --check`` says whether this
machine has exactly those bytes.

Format, version 1 (JSON, so it diffs and reviews well; keys beyond these are ignored)::

    {
      "hanzo_lock_version": 1,
      "generated_by": "hanzo-cli 0.1.0",
      "models": [
        {
          "provider": "ollama",
          "name": "registry.example/ns/model:tag",
          "version": "sha256:<manifest digest>",
          "files": [{"name": "model", "size": 1234, "sha256": "<64 hex>"}, ...]
        }
      ]
    }

A reader refuses a newer ``hanzo_lock_version`` (it cannot know what it would be leaving out).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hanzo_cli.errors import HanzoError, IntegrityError
from hanzo_cli.fsutil import atomic_write
from hanzo_cli.plugins import registry
from hanzo_cli.providers import ModelInfo, Provider, PullOptions

LOCK_VERSION = 1
DEFAULT_LOCK_FILE = "hanzo.lock"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class LockedFile:
    name: str  # a layer's kind (Ollama) or the file's name (Hugging Face): for people, not checks
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class LockedModel:
    provider: str
    name: str
    version: str
    files: tuple[LockedFile, ...]

    @property
    def fingerprint(self) -> frozenset[tuple[str, int]]:
        return frozenset((f.sha256, f.size) for f in self.files)

    @property
    def label(self) -> str:
        return f"{self.provider}:{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "name": self.name,
            "version": self.version,
            "files": [f.to_json() for f in self.files],
        }


def file_sha256(path: Path, digest: str | None) -> str:
    """The file's sha256: from its verified digest where the provider gives one, else hashed."""
    if digest and digest.startswith("sha256:") and _HEX64.match(digest[7:]):
        return digest[7:]
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def lock_model(provider: Provider, model: ModelInfo) -> LockedModel:
    version = provider.installed_version(model)
    if not version:
        raise HanzoError(f"{model.ref} has no exact version to lock")
    files = tuple(
        LockedFile(_file_name(f.path, f.kind), f.size, file_sha256(f.path, f.digest)) for f in model.files
    )
    return LockedModel(model.provider, model.name, version, files)


def _file_name(path: Path, kind: str) -> str:
    """The file's own name, or its kind where the name is only its digest (a content store's blob)."""
    name = Path(path).name
    return kind if name.startswith("sha256-") else name


def write_lock(path: Path, locked: Sequence[LockedModel]) -> None:
    from hanzo_cli import __version__

    data = {
        "hanzo_lock_version": LOCK_VERSION,
        "generated_by": f"hanzo-cli {__version__}",
        "models": [m.to_json() for m in locked],
    }
    atomic_write(path, (json.dumps(data, indent=2) + "\n").encode())


def read_lock(path: Path) -> list[LockedModel]:
    """Parse and validate a lock file; every problem is one clear line naming the file."""
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HanzoError(f"cannot read lock file {where}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise HanzoError(f"{where} is not a valid lock file (not JSON: {exc})") from None
    if not isinstance(data, dict) or "hanzo_lock_version" not in data:
        raise HanzoError(f"{where} is not a hanzo lock file (no hanzo_lock_version)")
    version = data["hanzo_lock_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise HanzoError(f"{where}: invalid hanzo_lock_version {version!r}")
    if version > LOCK_VERSION:
        raise HanzoError(
            f"{where} is lock format version {version}; this hanzo reads version {LOCK_VERSION} "
            "(upgrade hanzo-cli)"
        )
    models = data.get("models")
    if not isinstance(models, list):
        raise HanzoError(f"{where}: 'models' is not a list")
    return [_model(entry, f"{where}: models[{i}]") for i, entry in enumerate(models)]


def _model(entry: Any, where: str) -> LockedModel:
    if not isinstance(entry, dict):
        raise HanzoError(f"{where} is not an object")
    for key in ("provider", "name", "version"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise HanzoError(f"{where} has no valid {key!r}")
    files = entry.get("files")
    if not isinstance(files, list) or not files:
        raise HanzoError(f"{where} has no 'files' list")
    parsed = []
    for j, f in enumerate(files):
        ok = (
            isinstance(f, dict)
            and isinstance(f.get("name"), str)
            and isinstance(f.get("size"), int)
            and not isinstance(f.get("size"), bool)
            and f["size"] >= 0
            and isinstance(f.get("sha256"), str)
            and _HEX64.match(f["sha256"])
        )
        if not ok:
            raise HanzoError(f"{where}.files[{j}] needs a name, a size and a sha256 (64 hex digits)")
        parsed.append(LockedFile(f["name"], f["size"], f["sha256"]))
    return LockedModel(entry["provider"], entry["name"], entry["version"], tuple(parsed))


def providers_for(locked: Iterable[LockedModel]) -> dict[str, Provider]:
    """Each provider a lock names; one that is not installed is one clear error before anything."""
    reg = registry()
    return {m.provider: reg.provider(m.provider) for m in locked}


def _fingerprint(model: ModelInfo) -> frozenset[tuple[str, int]]:
    return frozenset((file_sha256(f.path, f.digest), f.size) for f in model.files)


def pull_locked(locked: Sequence[LockedModel], options: PullOptions) -> list[ModelInfo]:
    """Pull every model at exactly its locked version; refuse one whose bytes differ."""
    providers = providers_for(locked)
    pulled = []
    for m in locked:
        model = providers[m.provider].pull_exact(m.name, m.version, options)
        if _fingerprint(model) != m.fingerprint:
            raise IntegrityError(
                f"{m.label} at {m.version} is not the locked files (the source changed them)"
            )
        pulled.append(model)
    return pulled


@dataclass(frozen=True)
class LockCheck:
    model: LockedModel
    status: str  # "ok", "missing" (no such version here), "differs" (the version, other files)
    local: str | None = None  # the local model's name when found

    def to_json(self) -> dict[str, Any]:
        return {**self.model.to_json(), "status": self.status, "local": self.local}


def check_lock(locked: Sequence[LockedModel]) -> list[LockCheck]:
    """Whether this machine has each locked model's version with exactly its files."""
    providers = providers_for(locked)
    listed: dict[str, list[ModelInfo]] = {}
    results = []
    for m in locked:
        p = providers[m.provider]
        if m.provider not in listed:
            listed[m.provider] = list(p.list())
        # A model list() does not show on its own (one file of a repo) is found by its names.
        named = [p.get(m.name), p.get(p.exact_name(m.name, m.version))]
        local = [*listed[m.provider], *(info for info in named if info is not None)]
        same = [info for info in local if p.installed_version(info) == m.version]
        match = next((info for info in same if _fingerprint(info) == m.fingerprint), None)
        if match is not None:
            results.append(LockCheck(m, "ok", match.name))
        else:
            results.append(LockCheck(m, "differs" if same else "missing", same[0].name if same else None))
    return results
