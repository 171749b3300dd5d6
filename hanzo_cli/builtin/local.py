"""The built-in ``local`` plugin: registers the provider of GGUF files imported by hand and the
``model:import`` command. Kept cheap to import (``hanzo --help`` loads it): the provider, and the store
it writes, are imported when first used (:mod:`hanzo_cli.builtin.local_provider`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from hanzo_cli.api import hookimpl

if TYPE_CHECKING:
    from hanzo_cli.api import Provider


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    from hanzo_cli.builtin.local_provider import LocalProvider

    register(LocalProvider())


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(import_cmd)


@click.command("model:import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Name to give it: [namespace/]model[:tag].")
@click.option("--json", "as_json", is_flag=True, help="Print the imported model as JSON.")
def import_cmd(path: Path, name: str, as_json: bool) -> None:
    """Import a local GGUF file into hanzo's store (as the 'local' provider)."""
    from hanzo_cli.api import echo_json, get_provider, human_size
    from hanzo_cli.builtin.local_provider import LocalProvider

    local = get_provider("local")
    assert isinstance(local, LocalProvider)
    imported = local.import_file(path, name)
    if as_json:
        echo_json(imported.to_json())
    else:
        click.echo(
            f"imported local:{imported.name} ({human_size(imported.size)}) -> {imported.path}", err=True
        )
