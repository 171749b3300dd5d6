"""``config:get`` / ``config:set``: hanzo's few settings (default models, provider, runtime)."""

from __future__ import annotations

import click

from hanzo_cli.hookspecs import hookimpl


@click.command("config:get")
@click.argument("key", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def get_cmd(key: str | None, as_json: bool) -> None:
    """Print one setting, or all of them (environment overrides included)."""
    from hanzo_cli.config import SETTINGS, env_name, get_setting
    from hanzo_cli.errors import HanzoError
    from hanzo_cli.output import echo_json

    if key is not None and key not in SETTINGS:
        raise HanzoError(f"unknown setting {key!r} (known: {', '.join(sorted(SETTINGS))})")
    keys = [key] if key else sorted(SETTINGS)
    values = {k: get_setting(k) for k in keys}
    if as_json:
        echo_json(values if key is None else values[key])
    elif key is not None:
        if values[key] is None:
            raise HanzoError(
                f"{key} is not set (set it with: hanzo config:set {key} VALUE or {env_name(key)})"
            )
        click.echo(values[key])
    else:
        for k in keys:
            click.echo(f"{k} = {values[k] if values[k] is not None else '(unset)'}  # {SETTINGS[k]}")


@click.command("config:set")
@click.argument("key")
@click.argument("value", required=False)
@click.option("--unset", is_flag=True, help="Remove the setting.")
def set_cmd(key: str, value: str | None, unset: bool) -> None:
    """Store a setting in hanzo's config file, e.g. config:set embedding.model qwen3-embedding-0.6b."""
    from hanzo_cli.config import set_setting
    from hanzo_cli.constants import config_path

    if (value is None) != unset:
        raise click.UsageError("give a VALUE or --unset")
    set_setting(key, None if unset else value)
    click.echo(f"{key} {'unset' if unset else '= ' + str(value)} in {config_path()}", err=True)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(get_cmd)
    cli.add_command(set_cmd)
