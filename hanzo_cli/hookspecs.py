"""The hooks a hanzo plugin can implement. These docstrings are the reference.

A plugin is a module registered under the ``hanzo`` entry-point group that defines functions
decorated with :data:`hookimpl` and named exactly like a hook below (a misspelled name is an error
at start-up, not a silent no-op)::

    from hanzo_cli import hookimpl

    @hookimpl
    def register_providers(register):
        from .provider import MyProvider   # import heavy code inside the hook
        register(MyProvider())

Hooks are called lazily: ``register_commands`` when the CLI is built (so keep plugin modules
cheap to import), the others the first time a command needs providers, runtimes or the catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from hanzo_cli.catalog import CatalogEntry
    from hanzo_cli.providers import Provider
    from hanzo_cli.runtimes import Runtime

hookspec = pluggy.HookspecMarker("hanzo")
hookimpl = pluggy.HookimplMarker("hanzo")


@hookspec
def register_providers(register: Callable[[Provider], None]) -> None:
    """Register model providers: ``register(provider)`` with a :class:`hanzo_cli.providers.Provider`.

    A provider pulls, lists, shows and deletes models of one source (a registry, a hub, a
    folder). Its ``name`` (and ``prefixes``) is what users write as ``--provider NAME`` or
    ``NAME:model``.
    """


@hookspec
def register_runtimes(register: Callable[[Runtime], None]) -> None:
    """Register inference runtimes: ``register(runtime)`` with a :class:`hanzo_cli.runtimes.Runtime`.

    A runtime declares the tasks (``embed``, ``rerank``, ``generate``) and GGUF architectures it
    supports; hanzo picks the first one that fits a model unless ``--runtime`` names one.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``hanzo`` CLI: ``cli.add_command(command)`` or ``@cli.command()``.

    Name commands ``topic:verb`` like the built-in ones (``model:push``).
    """


@hookspec
def register_models(register: Callable[[CatalogEntry], None]) -> None:
    """Add catalog entries: ``register(CatalogEntry(alias, provider, name, task=..., tier=...))``.

    An entry maps a short alias such as ``qwen3-embedding-8b`` to the name one provider uses for
    that model, so ``hanzo model:pull qwen3-embedding-8b --provider huggingface`` works for every
    provider that registered the alias.
    """
