"""The built-in model lifecycle commands: ``model:outdated``, ``model:update`` (and, as they land,
``model:lock``, ``model:du``, ``model:prune``). The logic lives in small core modules
(:mod:`hanzo_cli.updates`, …); providers answer through their lifecycle methods."""

from __future__ import annotations

from collections.abc import Sequence

import click

from hanzo_cli.errors import HanzoError, UsageError
from hanzo_cli.hookspecs import hookimpl


def _short(version: str | None) -> str:
    if not version:
        return "-"
    return version.split(":", 1)[-1][:12]


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


@click.command("model:outdated")
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option("--provider", "-p", metavar="NAME", help="Only this provider's models.")
@click.option("--insecure", is_flag=True, help="Allow plain-HTTP registries.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def outdated_cmd(refs: tuple[str, ...], provider: str | None, insecure: bool, as_json: bool) -> None:
    """Check whether local models changed upstream: up-to-date, outdated (with the bytes an update
    would download), pinned, unreachable (offline, auth, gone) or untracked (no source to ask)."""
    from hanzo_cli.output import echo_json, human_size
    from hanzo_cli.providers import PullOptions
    from hanzo_cli.updates import OUTDATED, UNREACHABLE, check_all, local_models

    checks = check_all(local_models(refs, provider), PullOptions(insecure=insecure))
    if as_json:
        echo_json([c.to_json() for c in checks])
        return
    if not checks:
        click.echo("No models.", err=True)
        return
    rows = [("NAME", "PROVIDER", "STATUS", "INSTALLED", "LATEST", "DOWNLOAD")]
    for c in checks:
        download = human_size(c.fetch_bytes) if c.status == OUTDATED else "-"
        rows.append(
            (c.model.name, c.model.provider, c.status, _short(c.installed), _short(c.latest), download)
        )
    _table(rows)
    for c in checks:
        if c.status == UNREACHABLE:
            click.echo(f"{c.model.provider}:{c.model.name}: {c.reason}", err=True)


@click.command("model:update")
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option("--all", "update_all", is_flag=True, help="Update every local model that is outdated.")
@click.option("--provider", "-p", metavar="NAME", help="Only this provider's models.")
@click.option("--dry-run", is_flag=True, help="Say what would be updated; change nothing.")
@click.option("--insecure", is_flag=True, help="Allow plain-HTTP registries.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def update_cmd(
    refs: tuple[str, ...],
    update_all: bool,
    provider: str | None,
    dry_run: bool,
    insecure: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Move models to what their names point at now. Only what changed is downloaded; the old version
    stays usable until the new one is complete; what only the old version used is then removed.
    Pinned models (pulled by digest or commit) never move."""
    from hanzo_cli.output import echo_json, human_size, info, set_quiet
    from hanzo_cli.providers import PullOptions
    from hanzo_cli.updates import check_all, local_models, update_models

    if bool(refs) == update_all:
        raise UsageError("give the models to update, or --all (not both)")
    set_quiet(quiet)
    options = PullOptions(insecure=insecure, quiet=quiet)
    results = update_models(check_all(local_models(refs, provider), options), options, dry_run=dry_run)
    if as_json:
        echo_json([r.to_json() for r in results])
    else:
        for r in results:
            c = r.check
            label = f"{c.model.provider}:{c.model.name}"
            if r.action == "skipped":
                why = f" ({c.reason})" if c.reason else ""
                info(f"{label}: {c.status}{why}")
            elif r.action == "failed":
                info(f"{label}: update failed: {r.error}")
            else:
                info(
                    f"{label}: {r.action} {_short(c.installed)} -> {_short(c.latest)} "
                    f"({human_size(c.fetch_bytes)} to download)"
                )
    failed = [r for r in results if r.action == "failed"]
    if failed:
        names = ", ".join(f"{r.check.model.provider}:{r.check.model.name}" for r in failed)
        raise HanzoError(f"{len(failed)} update(s) failed: {names}")


@click.command("model:lock")
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option("--provider", "-p", metavar="NAME", help="Only this provider's models.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default="hanzo.lock",
    show_default=True,
    help="Where to write the lock file.",
)
@click.option(
    "--check",
    "check_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Check that this machine has exactly what FILE locks (exit 1 when it differs).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def lock_cmd(
    refs: tuple[str, ...], provider: str | None, output: str, check_file: str | None, as_json: bool
) -> None:
    """Write a lock file: each model's provider, name, exact version (manifest digest or commit) and
    every file with its size and sha256. ``hanzo model:pull --lock FILE`` reproduces it elsewhere."""
    from pathlib import Path

    from hanzo_cli.lockfile import check_lock, lock_model, read_lock, write_lock
    from hanzo_cli.output import echo_json, info
    from hanzo_cli.updates import local_models

    if check_file:
        if refs or provider:
            raise UsageError("--check takes no models: it checks what the lock file names")
        checks = check_lock(read_lock(Path(check_file)))
        if as_json:
            echo_json([c.to_json() for c in checks])
        else:
            for c in checks:
                info(f"{c.model.label} {_short(c.model.version)}: {c.status}")
        bad = [c for c in checks if c.status != "ok"]
        if bad:
            names = ", ".join(f"{c.model.label} ({c.status})" for c in bad)
            raise HanzoError(f"this machine differs from {check_file}: {names}")
        return
    locked = [lock_model(p, m) for p, m in local_models(refs, provider)]
    if not locked:
        raise HanzoError("no models to lock")
    write_lock(Path(output), locked)
    if as_json:
        echo_json([m.to_json() for m in locked])
    else:
        info(f"locked {len(locked)} model(s) in {output}")


@click.command("model:du")
@click.option("--provider", "-p", metavar="NAME", help="Only this provider's store.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def du_cmd(provider: str | None, as_json: bool) -> None:
    """Disk usage: bytes per provider and per model, bytes shared between models and between
    providers (each file counted once), duplicate copies, and what model:prune would reclaim."""
    from hanzo_cli.diskusage import measure
    from hanzo_cli.output import echo_json, human_size

    usage = measure(provider)
    if as_json:
        echo_json(usage.to_json())
        return
    rows = [("PROVIDER", "MODEL", "SIZE", "SHARED")]
    rows += [(m.provider, m.name, human_size(m.bytes), human_size(m.shared_bytes)) for m in usage.models]
    _table(rows)
    click.echo("")
    for name, size in sorted(usage.providers.items()):
        click.echo(f"{name}: {human_size(size)}")
    click.echo(f"total: {human_size(usage.total_bytes)} on disk")
    click.echo(f"shared between models: {human_size(usage.shared_between_models)}")
    click.echo(f"shared between providers: {human_size(usage.shared_between_providers)}")
    click.echo(f"duplicate copies: {human_size(usage.duplicate_bytes)}")
    click.echo(f"reclaimable: {human_size(usage.reclaimable_bytes)} ({len(usage.reclaimable)} files)")


@click.command("model:prune")
@click.option("--provider", "-p", metavar="NAME", help="Only this provider's store.")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option(
    "--partials-older-than",
    "age",
    default="24h",
    show_default=True,
    metavar="AGE",
    help="Partial downloads untouched this long are stale (30m, 12h, 7d).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def prune_cmd(provider: str | None, dry_run: bool, age: str, as_json: bool) -> None:
    """Remove what model:du calls reclaimable (orphan blobs, stale partial downloads) and nothing
    else: never a file a manifest, snapshot or running pull uses."""
    from hanzo_cli.diskusage import parse_age, prune
    from hanzo_cli.output import echo_json, human_size, info

    removed = prune(provider, parse_age(age), dry_run=dry_run)
    if as_json:
        echo_json([item.to_json() for item in removed])
        return
    verb = "would remove" if dry_run else "removed"
    for item in removed:
        info(f"{verb} {item.reason} {item.path} ({human_size(item.size)})")
    info(f"{verb} {len(removed)} file(s), {human_size(sum(i.size for i in removed))}")


@click.command("model:dedup")
@click.option("--dry-run", is_flag=True, help="List what would be linked; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dedup_cmd(dry_run: bool, as_json: bool) -> None:
    """Keep one copy of identical files across the Hugging Face cache, Ollama's blobs, LM Studio's
    folder and hanzo's store: each verified duplicate becomes a hard link to one file (a reflink on
    another file system that offers it; else it is left as is, and said so)."""
    from hanzo_cli.onecopy import dedup, saved_bytes
    from hanzo_cli.output import echo_json, human_size, info

    done = dedup(dry_run=dry_run)
    if as_json:
        echo_json([d.to_json() for d in done])
        return
    for d in done:
        info(f"{d.how}: {d.path} -> {d.source} ({human_size(d.size)})")
    verb = "would save" if dry_run else "saved"
    info(f"{verb} {human_size(saved_bytes(done))}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    from hanzo_cli.config import register_setting

    register_setting(
        "node.update", "node:start checks its models for updates and pulls changes first (true/false)"
    )
    for command in (outdated_cmd, update_cmd, lock_cmd, du_cmd, prune_cmd, dedup_cmd):
        cli.add_command(command)
