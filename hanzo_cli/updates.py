"""Which local models changed upstream (``model:outdated``) and moving them (``model:update``).

Each provider answers for its own models through the lifecycle methods of
:class:`~hanzo_cli.providers.Provider` (``installed_version``, ``is_pinned``, ``remote_version``,
``update``). The checks are independent network round trips, so they run in a thread pool; a
source that cannot be reached makes its models ``unreachable`` and never fails the whole command.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from hanzo_cli.errors import HanzoError, NotFoundError
from hanzo_cli.models import candidates
from hanzo_cli.output import warn
from hanzo_cli.plugins import registry
from hanzo_cli.providers import ModelInfo, Provider, PullOptions

#: At most this many checks in flight: enough to hide round trips, few enough to be polite.
MAX_PARALLEL_CHECKS = 16

UP_TO_DATE = "up-to-date"
OUTDATED = "outdated"
PINNED = "pinned"
UNREACHABLE = "unreachable"
#: The provider has no upstream to ask (a model imported by hand, a provider without a source).
UNTRACKED = "untracked"


@dataclass
class Check:
    """One local model's state against its source."""

    provider: Provider
    model: ModelInfo
    status: str
    installed: str | None
    latest: str | None = None
    fetch_bytes: int = 0  # what an update would download
    reason: str | None = None  # why a source was unreachable

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.model.provider,
            "name": self.model.name,
            "status": self.status,
            "installed": self.installed,
            "latest": self.latest,
            "fetch_bytes": self.fetch_bytes,
            "reason": self.reason,
        }


def local_models(refs: Sequence[str], provider: str | None = None) -> list[tuple[Provider, ModelInfo]]:
    """The local models ``refs`` name (each must exist), or every local model (of ``provider``)."""
    found: list[tuple[Provider, ModelInfo]] = []
    if refs:
        for ref in refs:
            hit = next(
                ((p, info) for p, name in candidates(ref, provider) if (info := p.get(name)) is not None),
                None,
            )
            if hit is None:
                raise NotFoundError(f"model {ref!r} is not pulled")
            found.append(hit)
    else:
        reg = registry()
        for p in [reg.provider(provider)] if provider else list(reg.providers.values()):
            try:
                found.extend((p, info) for info in p.list())
            except HanzoError as exc:
                if provider:
                    raise
                warn(f"{p.name}: {exc.message}")
    unique: dict[tuple[str, str], tuple[Provider, ModelInfo]] = {}
    for p, info in found:
        unique.setdefault((p.name, p.normalize(info.name)), (p, info))
    return list(unique.values())


def check(provider: Provider, model: ModelInfo, options: PullOptions) -> Check:
    """Ask the model's source what its name points at now (nothing is asked for a pinned model)."""
    installed = provider.installed_version(model)
    if provider.is_pinned(model):
        return Check(provider, model, PINNED, installed, installed)
    try:
        remote = provider.remote_version(model, options)
    except (HanzoError, OSError) as exc:
        reason = exc.message if isinstance(exc, HanzoError) else str(exc)
        return Check(provider, model, UNREACHABLE, installed, reason=reason)
    if remote is None:
        return Check(provider, model, UNTRACKED, installed)
    status = UP_TO_DATE if remote.version == installed else OUTDATED
    fetch = remote.fetch_bytes if status == OUTDATED else 0
    return Check(provider, model, status, installed, remote.version, fetch)


def check_all(
    pairs: Sequence[tuple[Provider, ModelInfo]], options: PullOptions, parallel: int = MAX_PARALLEL_CHECKS
) -> list[Check]:
    """:func:`check` of every model, ``parallel`` at a time, in the order given."""
    if not pairs:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(pairs)))) as pool:
        return list(pool.map(lambda pair: check(pair[0], pair[1], options), pairs))


@dataclass
class UpdateResult:
    check: Check
    action: str  # "updated", "would update", "skipped", "failed"
    updated: ModelInfo | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = self.check.to_json()
        data["action"] = self.action
        data["error"] = self.error
        if self.updated is not None:
            data["now"] = self.provider_version()
        return data

    def provider_version(self) -> str | None:
        return self.check.provider.installed_version(self.updated) if self.updated else None


def update_models(checks: Sequence[Check], options: PullOptions, *, dry_run: bool) -> list[UpdateResult]:
    """Update each outdated model in turn (one failure does not stop the others)."""
    results: list[UpdateResult] = []
    for c in checks:
        if c.status != OUTDATED:
            results.append(UpdateResult(c, "skipped"))
        elif dry_run:
            results.append(UpdateResult(c, "would update"))
        else:
            try:
                results.append(UpdateResult(c, "updated", c.provider.update(c.model, options)))
            except HanzoError as exc:
                results.append(UpdateResult(c, "failed", error=exc.message))
    return results


def refresh(refs: Sequence[str], options: PullOptions) -> list[UpdateResult]:
    """``node:start --update``: check the node's models and pull what changed, saying what did. A
    check or an update that fails is said and never raised: the node then starts with what is on
    disk. Models not pulled yet are left to the start, which pulls them."""
    from hanzo_cli.output import info

    pairs: list[tuple[Provider, ModelInfo]] = []
    for ref in refs:
        try:
            pairs.extend(local_models([ref]))
        except HanzoError:
            continue
    results = update_models(check_all(pairs, options), options, dry_run=False)
    for r in results:
        c = r.check
        label = f"{c.model.provider}:{c.model.name}"
        if r.action == "updated":
            info(f"{label}: updated {_short(c.installed)} -> {_short(r.provider_version())}")
        elif r.action == "failed":
            warn(f"{label}: update failed ({r.error}); starting with what is on disk")
        elif c.status == UNREACHABLE:
            warn(f"{label}: could not check for updates ({c.reason}); starting with what is on disk")
        else:
            info(f"{label}: {c.status}")
    return results


def _short(version: str | None) -> str:
    return version.split(":", 1)[-1][:12] if version else "-"
