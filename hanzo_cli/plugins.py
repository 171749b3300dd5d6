"""Plugin loading: built-in plugins, then every ``hanzo`` entry point (or ``HANZO_PLUGINS``).

Built-in behaviour (the local provider, the core commands) is registered through the same hooks
as third-party plugins. ``HANZO_PLUGINS=a,b`` loads only those external plugins (entry-point or
distribution names); ``HANZO_PLUGINS=`` loads none. Plugin modules are imported when the CLI is
built, so they must be cheap; their hooks import heavy libraries inside the function body.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

import pluggy

from hanzo_cli import hookspecs
from hanzo_cli.constants import ENV_PLUGINS, cache_dir
from hanzo_cli.errors import HanzoError, MissingPluginError, PluginError
from hanzo_cli.extras import known_provider_prefixes, missing_plugin_hint
from hanzo_cli.fsutil import atomic_write

if TYPE_CHECKING:
    from hanzo_cli.catalog import Catalog
    from hanzo_cli.providers import Provider
    from hanzo_cli.runtimes import Runtime

ENTRY_POINT_GROUP = "hanzo"

BUILTIN_PLUGINS = (
    "hanzo_cli.builtin.local",
    "hanzo_cli.commands.model",
    "hanzo_cli.commands.config",
    "hanzo_cli.commands.embedding",
    "hanzo_cli.commands.bench",
    "hanzo_cli.commands.plugins",
    "hanzo_cli.commands.lifecycle",
    "hanzo_cli.builtin.node",
    "hanzo_cli.builtin.run",
)


@dataclass
class PluginRecord:
    name: str
    module: ModuleType
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False
    hooks: list[str] = field(default_factory=list)


pm = pluggy.PluginManager("hanzo")
pm.add_hookspecs(hookspecs)
_records: list[PluginRecord] = []
_loaded = False


def _wanted() -> set[str] | None:
    value = os.environ.get(ENV_PLUGINS)
    if value is None:
        return None
    return {name.strip().lower() for name in value.split(",") if name.strip()}


def _register(module: ModuleType, name: str, dist: str | None, version: str | None, builtin: bool) -> None:
    try:
        pm.register(module, name=name)
    except ValueError as exc:  # duplicate name: two distributions claim the same plugin name
        raise PluginError(f"plugin {name!r} is registered twice: {exc}") from None
    _records.append(PluginRecord(name, module, dist, version, builtin))


class EntryPoint(NamedTuple):
    name: str
    module: str
    dist: str | None
    version: str | None


def _entry_points() -> list[EntryPoint]:
    """The ``hanzo`` entry points, from a cache that is valid while sys.path's folders are unchanged.

    Scanning every installed distribution with importlib.metadata costs as much as importing
    click, on every run. Installing, upgrading or removing a package changes the mtime of the
    site-packages folder that holds it, so a fingerprint of those mtimes keys the cache.
    """
    fingerprint = []
    for entry in sys.path:
        if not entry or entry == os.getcwd():
            continue  # the working folder of `python -c`: changes all the time, holds no plugins
        try:
            fingerprint.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            continue
    cache = _cache_path()
    try:
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if cached["fingerprint"] == fingerprint:
            return [EntryPoint(*row) for row in cached["entry_points"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from importlib.metadata import entry_points

    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        found.append(
            EntryPoint(
                ep.name,
                ep.value.split(":")[0],
                dist.metadata["Name"] if dist else None,
                dist.version if dist else None,
            )
        )
    try:
        atomic_write(cache, json.dumps({"fingerprint": fingerprint, "entry_points": found}).encode())
    except OSError:
        pass  # a read-only home only costs the rescan
    return found


def _cache_path() -> Path:
    return cache_dir() / "entry-points.json"


def forget_entry_points() -> None:
    """Drop the entry-point cache (after pip changed the environment: a change within one mtime tick
    of the folder would otherwise go unseen)."""
    try:
        _cache_path().unlink()
    except OSError:
        pass


def load_plugins() -> None:
    """Register built-ins and installed plugins once; fail loudly on unknown hook names."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from hanzo_cli import __version__

    for modname in BUILTIN_PLUGINS:
        module = importlib.import_module(modname)
        _register(module, modname.rsplit(".", 1)[-1], "hanzo-cli", __version__, builtin=True)

    wanted = _wanted()
    for ep in _entry_points():
        if wanted is not None and ep.name.lower() not in wanted and (ep.dist or "").lower() not in wanted:
            continue
        if pm.has_plugin(ep.name):
            continue  # the same distribution seen twice on sys.path
        try:
            module = importlib.import_module(ep.module)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the CLI
            print(f"Warning: plugin {ep.name!r} failed to load: {exc}", file=sys.stderr)
            continue
        _register(module, ep.name, ep.dist, ep.version, builtin=False)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {exc.plugin!r} defines an unknown hook: {exc}") from None
    for record in _records:
        record.hooks = sorted(hook.name for hook in pm.get_hookcallers(record.module) or [] if hook.name)


def plugin_records() -> list[PluginRecord]:
    """Built-ins first, then external plugins by name (entry-point order is file-system order)."""
    load_plugins()
    return sorted(_records, key=lambda r: (not r.builtin, r.name if not r.builtin else ""))


@dataclass
class Registry:
    """Everything plugins registered through the data hooks."""

    providers: dict[str, Provider]
    runtimes: list[Runtime]
    catalog: Catalog

    def provider(self, name: str) -> Provider:
        """The provider called ``name`` (or one of its prefixes), or a clear error."""
        key = name.lower()
        for provider in self.providers.values():
            if key == provider.name or key in provider.prefixes:
                return provider
        hint = missing_plugin_hint("provider", key)
        if hint:
            raise MissingPluginError(f"provider {name!r} is not installed{hint}")
        known = ", ".join(self.providers) or "none"
        raise HanzoError(f"unknown provider {name!r} (installed: {known})")

    def prefixes(self) -> set[str]:
        """Every prefix that may start a reference: installed and known-but-missing providers."""
        names = known_provider_prefixes()
        for provider in self.providers.values():
            names.add(provider.name)
            names.update(provider.prefixes)
        return names


@cache
def registry() -> Registry:
    """Call the data hooks once and collect what they registered."""
    from hanzo_cli.catalog import Catalog, CatalogEntry
    from hanzo_cli.providers import Provider
    from hanzo_cli.runtimes import Runtime

    load_plugins()
    providers: list[Provider] = []
    runtimes: list[Runtime] = []
    catalog = Catalog()

    def add_provider(provider: Any) -> None:
        if not isinstance(provider, Provider):
            raise PluginError(f"register_providers got {provider!r}, not a Provider")
        providers.append(provider)

    def add_runtime(runtime: Any) -> None:
        if not isinstance(runtime, Runtime):
            raise PluginError(f"register_runtimes got {runtime!r}, not a Runtime")
        runtimes.append(runtime)

    def add_model(entry: Any) -> None:
        if not isinstance(entry, CatalogEntry):
            raise PluginError(f"register_models got {entry!r}, not a CatalogEntry")
        catalog.add(entry)

    pm.hook.register_providers(register=add_provider)
    pm.hook.register_runtimes(register=add_runtime)
    pm.hook.register_models(register=add_model)
    providers.sort(key=lambda p: p.priority)  # stable: registration order breaks ties
    # Entry points load in no guaranteed order, so runtimes break priority ties by name.
    runtimes.sort(key=lambda r: (r.priority, r.name))
    if len({r.name for r in runtimes}) != len(runtimes):
        raise PluginError("two plugins register a runtime with the same name")
    by_name: dict[str, Provider] = {}
    for provider in providers:
        if provider.name in by_name:
            raise PluginError(f"two plugins register a provider named {provider.name!r}")
        by_name[provider.name] = provider
    return Registry(by_name, runtimes, catalog)


def reset_for_tests() -> None:
    """Forget loaded plugins (tests load different plugin sets in one process)."""
    global pm, _loaded
    pm = pluggy.PluginManager("hanzo")
    pm.add_hookspecs(hookspecs)
    _records.clear()
    _loaded = False
    registry.cache_clear()
