"""What models cost on disk (``model:du``) and removing what no model needs (``model:prune``).

Bytes are counted per file on disk (device and inode, after following symlinks), so a file
hard-linked into two stores, or one blob two models name, is counted once; "shared" says how much
of that is used by more than one model, or by more than one provider. "Duplicates" are different
files with the same sha256 (what ``model:dedup`` would save). Reclaimable files come from each
provider (:meth:`~hanzo_cli.providers.Provider.reclaimable`): orphan blobs and stale partial
downloads; a prune removes only those, re-checked under the provider's locks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hanzo_cli.errors import HanzoError, UsageError
from hanzo_cli.output import warn
from hanzo_cli.plugins import registry
from hanzo_cli.providers import ModelInfo, Provider, Reclaimable

#: Partial downloads untouched this long are stale by default (a paused pull resumes within a day).
DEFAULT_PARTIAL_AGE = 24 * 3600.0
_AGE_RE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """``30m``, ``12h``, ``7d``, ``2w`` or seconds -> seconds."""
    match = _AGE_RE.match(text.strip().lower())
    if not match:
        raise UsageError(f"invalid age {text!r}: use a number with s, m, h, d or w (e.g. 12h, 7d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class ModelUsage:
    provider: str
    name: str
    bytes: int = 0  # its files, each counted once
    shared_bytes: int = 0  # of which other models use too

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "name": self.name,
            "bytes": self.bytes,
            "shared_bytes": self.shared_bytes,
        }


@dataclass
class Usage:
    total_bytes: int = 0
    providers: dict[str, int] = field(default_factory=dict)
    models: list[ModelUsage] = field(default_factory=list)
    shared_between_models: int = 0
    shared_between_providers: int = 0
    duplicate_bytes: int = 0
    reclaimable: list[Reclaimable] = field(default_factory=list)

    @property
    def reclaimable_bytes(self) -> int:
        return sum(item.size for item in self.reclaimable)

    def to_json(self) -> dict[str, Any]:
        return {
            "total_bytes": self.total_bytes,
            "providers": self.providers,
            "models": [m.to_json() for m in self.models],
            "shared_between_models": self.shared_between_models,
            "shared_between_providers": self.shared_between_providers,
            "duplicate_bytes": self.duplicate_bytes,
            "reclaimable_bytes": self.reclaimable_bytes,
            "reclaimable": [item.to_json() for item in self.reclaimable],
        }


def _providers(provider: str | None) -> list[Provider]:
    reg = registry()
    return [reg.provider(provider)] if provider else list(reg.providers.values())


def _models(providers: Sequence[Provider]) -> list[ModelInfo]:
    found: list[ModelInfo] = []
    for p in providers:
        try:
            found.extend(p.list())
        except HanzoError as exc:
            warn(f"{p.name}: {exc.message}")
    return found


def _sha256(digest: str | None) -> str | None:
    return digest[7:] if digest and digest.startswith("sha256:") and len(digest) == 71 else None


def measure(provider: str | None, partials_older_than: float = DEFAULT_PARTIAL_AGE) -> Usage:
    providers = _providers(provider)
    usage = Usage()
    # (device, inode) -> size, the models and the providers that use it, and its sha256 if known
    sizes: dict[tuple[int, int], int] = {}
    users: dict[tuple[int, int], set[tuple[str, str]]] = {}
    owners: dict[tuple[int, int], set[str]] = {}
    by_sha: dict[str, set[tuple[int, int]]] = {}
    per_model: list[tuple[ModelUsage, set[tuple[int, int]]]] = []
    for model in _models(providers):
        keys: set[tuple[int, int]] = set()
        for f in model.files:
            try:
                st = Path(f.path).stat()  # follows the HF cache's symlinks to the blob
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            keys.add(key)
            sizes[key] = st.st_size
            users.setdefault(key, set()).add((model.provider, model.name))
            owners.setdefault(key, set()).add(model.provider)
            if (sha := _sha256(f.digest)) is not None:
                by_sha.setdefault(sha, set()).add(key)
        per_model.append((ModelUsage(model.provider, model.name), keys))
    for row, keys in per_model:
        row.bytes = sum(sizes[k] for k in keys)
        row.shared_bytes = sum(sizes[k] for k in keys if len(users[k]) > 1)
        usage.models.append(row)
    for key, size in sizes.items():
        usage.total_bytes += size
        for name in owners[key]:
            usage.providers[name] = usage.providers.get(name, 0) + size
        if len(users[key]) > 1:
            usage.shared_between_models += size
        if len(owners[key]) > 1:
            usage.shared_between_providers += size
    usage.duplicate_bytes = sum(sizes[next(iter(keys))] * (len(keys) - 1) for keys in by_sha.values())
    for p in providers:
        usage.reclaimable.extend(p.reclaimable(partials_older_than))
    return usage


def prune(provider: str | None, partials_older_than: float, *, dry_run: bool) -> list[Reclaimable]:
    """Remove what :func:`measure` calls reclaimable, each provider re-checking under its locks."""
    removed: list[Reclaimable] = []
    for p in _providers(provider):
        items = p.reclaimable(partials_older_than)
        if dry_run:
            removed.extend(items)
        elif items:
            removed.extend(p.reclaim(items, partials_older_than))
    return removed
