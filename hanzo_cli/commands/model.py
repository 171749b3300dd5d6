"""The built-in ``model:*`` commands, registered through ``register_commands``."""

from __future__ import annotations

from typing import Any

import click

from hanzo_cli.errors import HanzoError, PluginError, UsageError
from hanzo_cli.hookspecs import hookimpl
from hanzo_cli.providers import Provider, PullOption, PullOptions


class PullCommand(click.Command):
    """``model:pull`` with the providers' own options added when it is parsed, not at start-up
    (``hanzo --help`` must not import the providers). Each option's help names the providers that
    take it; the values of those given reach the provider in ``PullOptions.extra``."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        try:
            from hanzo_cli.plugins import registry

            providers = list(registry().providers.values())
        except HanzoError:
            return params
        return params[:-1] + provider_options(providers) + params[-1:]  # keep --help last


def provider_options(providers: list[Provider]) -> list[click.Parameter]:
    """One Click option per declared :class:`PullOption` name, its help naming its providers."""
    declared: dict[str, PullOption] = {}
    owners: dict[str, list[str]] = {}
    for provider in providers:
        for option in provider.pull_options:
            first = declared.setdefault(option.name, option)
            if first.shape() != option.shape():
                raise PluginError(
                    f"providers {owners[option.name][0]!r} and {provider.name!r} declare pull option "
                    f"{option.name!r} differently"
                )
            owners.setdefault(option.name, []).append(provider.name)
    return [
        click.Option(
            list(option.flags),
            option.name,
            metavar=option.metavar,
            is_flag=option.is_flag,
            multiple=option.multiple,
            help=f"{option.help} [{', '.join(owners[name])}]",
        )
        for name, option in declared.items()
    ]


def given_options(providers: list[Provider], values: dict[str, Any]) -> dict[str, Any]:
    """The provider-specific options the user actually gave, by name."""
    declared = {o.name: o for p in providers for o in p.pull_options}
    return {
        name: value for name, value in values.items() if name in declared and declared[name].is_set(value)
    }


@click.command("model:pull", cls=PullCommand)
@click.argument("ref", required=False)
@click.option(
    "--provider", "-p", metavar="NAME", help="Provider to pull from (default: the first that has it)."
)
@click.option("--insecure", is_flag=True, help="Allow plain-HTTP registries.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the pulled model as JSON.")
@click.option("--lock", "lock_file", metavar="FILE", help="Pull exactly what a lock file (model:lock) names.")
def pull_cmd(
    ref: str | None,
    provider: str | None,
    insecure: bool,
    quiet: bool,
    as_json: bool,
    lock_file: str | None,
    **extra: Any,
) -> None:
    """Pull a model: REF is [provider:]name or a catalog alias (qwen3-embedding-8b).

    Options marked [provider, ...] are taken only by those providers; giving one to another
    provider is an error."""
    from hanzo_cli import models
    from hanzo_cli.output import echo_json, human_size, info, set_quiet
    from hanzo_cli.plugins import registry

    set_quiet(quiet)
    if lock_file:
        from pathlib import Path

        from hanzo_cli.lockfile import pull_locked, read_lock

        if ref or provider:
            raise UsageError("--lock pulls what the lock file names: give no model or --provider")
        locked = pull_locked(read_lock(Path(lock_file)), PullOptions(insecure=insecure, quiet=quiet))
        if as_json:
            echo_json([m.to_json() for m in locked])
        else:
            for m in locked:
                info(f"pulled {m.provider}:{m.name} ({human_size(m.size)}) -> {m.path}")
        return
    if not ref:
        raise UsageError("Missing argument 'REF' (or give --lock FILE)")
    given = given_options(list(registry().providers.values()), extra)
    pulled = models.pull(ref, provider, PullOptions(insecure=insecure, quiet=quiet, extra=given))
    if as_json:
        echo_json(pulled.to_json())
    else:
        info(f"pulled {pulled.provider}:{pulled.name} ({human_size(pulled.size)}) -> {pulled.path}")


@click.command("model:list")
@click.option("--provider", "-p", metavar="NAME", help="Only this provider's models.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(provider: str | None, as_json: bool) -> None:
    """List the models every provider has."""
    from hanzo_cli.output import echo_json, human_size, warn
    from hanzo_cli.plugins import registry
    from hanzo_cli.providers import ModelInfo

    reg = registry()
    providers = [reg.provider(provider)] if provider else list(reg.providers.values())
    rows: list[ModelInfo] = []
    for p in providers:
        try:
            rows.extend(p.list())
        except HanzoError as exc:
            if provider:
                raise
            warn(f"{p.name}: {exc.message}")
    if as_json:
        echo_json([row.to_json() for row in rows])
        return
    if not rows:
        click.echo("No models. Pull one with: hanzo model:pull qwen3-embedding-0.6b", err=True)
        return
    table = [("NAME", "PROVIDER", "SIZE", "MODIFIED", "ID")]
    for row in rows:
        modified = row.modified_at.strftime("%Y-%m-%d %H:%M") if row.modified_at else "-"
        ident = row.digest.split(":", 1)[-1][:12] if row.digest else "-"
        table.append((row.name, row.provider, human_size(row.size), modified, ident))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


@click.command("model:show")
@click.argument("ref")
@click.option("--provider", "-p", metavar="NAME", help="Provider that has the model.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_cmd(ref: str, provider: str | None, as_json: bool) -> None:
    """Show a pulled model: files, size, digest and its GGUF metadata (or, for a safetensors model
    folder, what its config.json, safetensors headers and pooling config say)."""
    from hanzo_cli import models
    from hanzo_cli.gguf_info import read_gguf_info
    from hanzo_cli.output import echo_json, human_size
    from hanzo_cli.safetensors_info import model_format, read_safetensors_info

    found = models.show(ref, provider)
    data = found.to_json()
    kind = model_format(found.path)
    gguf = read_gguf_info(found.path).to_json() if found.path and kind == "gguf" else None
    folder = read_safetensors_info(found.path) if found.path and kind == "safetensors" else None
    data["gguf"] = gguf
    if folder is not None:
        data["safetensors"] = folder.to_json()
    if as_json:
        echo_json(data)
        return
    lines = [
        ("provider", found.provider),
        ("name", found.name),
        ("size", f"{human_size(found.size)} ({found.size} bytes)"),
        ("digest", found.digest or "-"),
        ("path", str(found.path) if found.path else "-"),
    ]
    if gguf:
        params = gguf["parameter_count"]
        lines += [
            ("architecture", gguf["architecture"] or "-"),
            ("parameters", f"{params:,}" if params else "-"),
            ("quantization", gguf["file_type"] or "-"),
            ("context length", str(gguf["context_length"] or "-")),
            ("embedding length", str(gguf["embedding_length"] or "-")),
            ("pooling", gguf["pooling_type"] or "-"),
        ]
    if folder is not None:
        lines += [
            ("format", "safetensors"),
            ("architecture", ", ".join(filter(None, [folder.architecture, *folder.architectures])) or "-"),
            ("parameters", f"{folder.parameter_count:,}" if folder.parameter_count else "-"),
            ("dtype", folder.dtype or "-"),
            ("hidden size", str(folder.hidden_size or "-")),
            ("layers", str(folder.layers or "-")),
            ("vocabulary", str(folder.vocab_size or "-")),
            ("context length", str(folder.context_length or "-")),
            ("pooling", (folder.pooling or "-") + (", normalized" if folder.normalize else "")),
        ]
        if folder.missing:
            lines.append(("missing", ", ".join(folder.missing)))
    for key, value in found.details.items():
        if isinstance(value, (str, int, float)) and key not in dict(lines):
            lines.append((key, str(value)))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key.ljust(width)}  {value}")
    if found.files:
        click.echo("files:")
        for f in found.files:
            click.echo(f"  {f.kind:<10} {human_size(f.size):>9}  {f.path}")


@click.command("model:delete")
@click.argument("ref")
@click.option("--provider", "-p", metavar="NAME", help="Provider that has the model.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def delete_cmd(ref: str, provider: str | None, yes: bool) -> None:
    """Delete a pulled model (blobs shared with other models are kept)."""
    import sys

    from hanzo_cli import models
    from hanzo_cli.errors import NotFoundError
    from hanzo_cli.output import human_size
    from hanzo_cli.providers import ModelInfo

    for p, name in models.candidates(ref, provider):
        try:
            found = p.get(name)
        except HanzoError as exc:
            # Unreadable (a corrupt manifest, say): deleting it is how the user gets rid of it.
            click.echo(f"Warning: {p.name}: {exc.message}", err=True)
            found = ModelInfo(p.name, name)
        if found is None:
            continue
        if not yes:
            if not sys.stdin.isatty():
                raise HanzoError("refusing to delete without --yes (no terminal to confirm on)")
            click.confirm(f"Delete {found.provider}:{found.name} ({human_size(found.size)})?", abort=True)
        p.delete(name)
        click.echo(f"deleted {found.provider}:{found.name}", err=True)
        return
    raise NotFoundError(f"model {ref!r} not found")


@hookimpl
def register_commands(cli: click.Group) -> None:
    for command in (pull_cmd, list_cmd, show_cmd, delete_cmd):
        cli.add_command(command)
