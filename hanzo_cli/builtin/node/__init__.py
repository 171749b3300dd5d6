"""The hanzo node, a built-in plugin: ``node:*`` commands and the built-in model server.

Registered like every other plugin (``BUILTIN_PLUGINS`` in :mod:`hanzo_cli.plugins`, through the
``register_commands`` hook) and written against :mod:`hanzo_cli.api`; it names no provider: a provider
whose own server can serve a model says so through :meth:`Provider.serving_url`. Its only private
imports are reference resolution (``hanzo_cli.models``) and the embedding loaders
(``hanzo_cli.embedding``), which are not public API yet.

Modules: :mod:`~.constants` (every default and environment variable), :mod:`~.commands` (the CLI),
:mod:`~.state` (state files, processes, health), :mod:`~.launch` (``node:start``), and the built-in
server: :mod:`~.server` (``python -m hanzo_cli.builtin.node.server``), :mod:`~.app` (the ASGI app),
:mod:`~.host` (a loaded model and its request batching), :mod:`~.bodies` (request validation).
"""

from __future__ import annotations

from hanzo_cli.builtin.node.commands import register_commands

__all__ = ["register_commands"]
