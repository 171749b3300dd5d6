"""From a reference the user typed to a provider call: alias lookup, provider choice, fall-through.

Commands (and plugins' commands) go through these functions rather than calling providers
directly, so every command resolves names the same way.
"""

from __future__ import annotations

from hanzo_cli.config import get_setting
from hanzo_cli.errors import HanzoError, MissingPluginError, NotFoundError
from hanzo_cli.plugins import Registry, missing_plugin_hint, registry
from hanzo_cli.providers import ModelInfo, Provider, PullOptions
from hanzo_cli.refs import parse_ref

Candidate = tuple[Provider, str]


def candidates(ref: str, provider: str | None = None, *, for_pull: bool = False) -> list[Candidate]:
    """The (provider, provider-specific name) pairs a reference may mean, best first."""
    reg = registry()
    parsed = parse_ref(ref, reg.prefixes())
    if provider and parsed.provider and reg.provider(provider) is not reg.provider(parsed.provider):
        raise HanzoError(
            f"reference {ref!r} names provider {parsed.provider!r} but --provider is {provider!r}"
        )
    chosen = provider or parsed.provider
    if chosen:
        p = reg.provider(chosen)
        if for_pull and not p.can_pull:
            raise HanzoError(f"provider {p.name!r} cannot pull models")
        name = _alias(reg, parsed.name, p)
        if not p.accepts(name):
            raise HanzoError(f"{name!r} is not a valid {p.name} model name")
        return [(p, name)]

    entries = reg.catalog.lookup(parsed.name)
    if entries:
        found = [(reg.providers[e.provider], e.name) for e in entries if e.provider in reg.providers]
        if not found:
            wanted = entries[0].provider
            raise MissingPluginError(
                f"{parsed.name!r} is served by provider {wanted!r}, which is not installed"
                f"{missing_plugin_hint('provider', wanted)}"
            )
        return _ordered(found, reg)

    pool = [p for p in reg.providers.values() if p.can_pull or not for_pull]
    if not pool:
        raise MissingPluginError(
            "no provider that can pull models is installed: pip install 'hanzo-cli[all]'"
        )
    found = [(p, parsed.name) for p in pool if p.accepts(parsed.name)]
    if not found:
        tried = ", ".join(p.name for p in pool)
        raise HanzoError(f"no provider accepts model reference {ref!r} (tried: {tried})")
    return _ordered(found, reg)


def _alias(reg: Registry, name: str, provider: Provider) -> str:
    entries = reg.catalog.lookup(name)
    if not entries:
        return name
    mine = [e for e in entries if e.provider == provider.name]
    if not mine:
        have = ", ".join(sorted({e.provider for e in entries}))
        raise HanzoError(f"alias {name!r} has no {provider.name} model (available from: {have})")
    return mine[0].name


def _ordered(found: list[Candidate], reg: Registry) -> list[Candidate]:
    # Catalog entries arrive in plugin-load (file-system) order: rank by provider priority instead.
    found.sort(key=lambda c: c[0].priority)
    default = get_setting("provider.default")
    if default:
        preferred = reg.provider(default)
        found.sort(key=lambda c: c[0] is not preferred)  # stable: keeps priority order otherwise
    return found


def pull(ref: str, provider: str | None = None, options: PullOptions | None = None) -> ModelInfo:
    """Pull through the first provider that has the model; 'not found' falls through to the next."""
    options = options or PullOptions()
    misses: list[str] = []
    cands = candidates(ref, provider, for_pull=True)
    for p, name in cands:
        try:
            return p.pull(name, options)
        except NotFoundError as exc:
            if len(cands) == 1:
                raise
            misses.append(f"{p.name}: {exc.message}")
    raise NotFoundError(f"{ref!r} not found ({'; '.join(misses)})")


def find(ref: str, provider: str | None = None) -> ModelInfo | None:
    """The local model a reference names, or None."""
    for p, name in candidates(ref, provider):
        info = p.get(name)
        if info is not None:
            return info
    return None


def show(ref: str, provider: str | None = None) -> ModelInfo:
    misses: list[str] = []
    for p, name in candidates(ref, provider):
        try:
            return p.show(name)
        except NotFoundError as exc:
            misses.append(exc.message)
    raise NotFoundError(f"model {ref!r} is not pulled ({'; '.join(misses)})")


def ensure(ref: str, provider: str | None = None, options: PullOptions | None = None) -> ModelInfo:
    """The local model, pulled first when missing (for commands that run a model)."""
    from hanzo_cli.output import info

    local = find(ref, provider)
    if local is not None and local.path is not None:
        return local
    info(f"{ref} is not pulled yet; pulling it first")
    return pull(ref, provider, options)
