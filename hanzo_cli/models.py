"""From a reference the user typed to a provider call: alias lookup, provider choice, fall-through.

Commands (and plugins' commands) go through these functions rather than calling providers
directly, so every command resolves names the same way.
"""

from __future__ import annotations

from collections.abc import Iterable

from hanzo_cli.config import get_setting
from hanzo_cli.errors import HanzoError, MissingPluginError, ModelNotFoundError, NotFoundError, UsageError
from hanzo_cli.extras import missing_plugin_hint
from hanzo_cli.output import info
from hanzo_cli.plugins import Registry, registry
from hanzo_cli.providers import FileSource, ModelInfo, Provider, PullOptions
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


def takes_options(provider: Provider, given: Iterable[str]) -> bool:
    """Whether ``provider`` declares every one of the ``given`` pull options."""
    return set(given) <= {option.name for option in provider.pull_options}


def _option_owners(reg: Registry, option: str) -> list[str]:
    return [p.name for p in reg.providers.values() if option in {o.name for o in p.pull_options}]


def _flag(reg: Registry, option: str) -> str:
    for p in reg.providers.values():
        for declared in p.pull_options:
            if declared.name == option:
                return declared.flags[0]
    return "--" + option.replace("_", "-")


def pull(ref: str, provider: str | None = None, options: PullOptions | None = None) -> ModelInfo:
    """Pull through the first provider that has the model; 'not found' falls through to the next.

    Only providers that take every provider-specific option given (``options.extra``) are tried; an
    option no candidate takes is refused with the providers that do take it.
    """
    options = options or PullOptions()
    reg = registry()
    cands = candidates(ref, provider, for_pull=True)
    taking = [c for c in cands if takes_options(c[0], options.extra)]
    if not taking:
        for option in options.extra:
            if not any(takes_options(p, [option]) for p, _ in cands):
                owners = ", ".join(_option_owners(reg, option)) or "none installed"
                tried = ", ".join(p.name for p, _ in cands)
                raise UsageError(
                    f"{_flag(reg, option)} is not an option of provider {tried} (it is taken by: {owners})"
                )
        raise UsageError("no single provider takes all of the options given")
    misses: list[str] = []
    for p, name in taking:
        try:
            return p.pull(name, options)
        except ModelNotFoundError as exc:
            if len(taking) == 1:
                raise
            misses.append(f"{p.name}: {exc.message}")
    raise ModelNotFoundError(f"{ref!r} not found ({'; '.join(misses)})")


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
        except ModelNotFoundError as exc:
            misses.append(exc.message)
    raise NotFoundError(f"model {ref!r} is not pulled ({'; '.join(misses)})")


def ensure(ref: str, provider: str | None = None, options: PullOptions | None = None) -> ModelInfo:
    """The local model, pulled first when missing (for commands that run a model)."""
    local = find(ref, provider)
    if local is not None and local.path is not None:
        return local
    info(f"{ref} is not pulled yet; pulling it first")
    return pull(ref, provider, options)


def get_provider(name: str) -> Provider:
    """The installed provider called ``name`` (or one of its prefixes), or a clear error naming the
    extra that installs it."""
    return registry().provider(name)


def file_source(name: str) -> FileSource:
    """The provider ``name`` as a :class:`FileSource` (for plugins that fetch through another
    plugin's resolution, as LM Studio does through Hugging Face's)."""
    provider = get_provider(name)
    if not isinstance(provider, FileSource):
        raise MissingPluginError(f"provider {name!r} cannot resolve and fetch repository files")
    return provider
