"""``node:start``, ``node:stop``, ``node:status``, ``node:ps``, ``node:logs``: the hanzo node's commands.

Loaded by ``hanzo --help``: only click and the node's constants at module level."""

from __future__ import annotations

import time
from pathlib import Path

import click

from hanzo_cli.api import hookimpl
from hanzo_cli.builtin.node.constants import (
    DEFAULT_IP,
    DEFAULT_KEEP_ALIVE,
    DEFAULT_MAX_LOADED,
    DEFAULT_PARALLEL,
    DEFAULT_PORT,
    ENV_API_KEY,
    MAX_BODY_BYTES,
    START_TIMEOUT,
    STOP_TIMEOUT,
)


@click.command("node:start")
@click.option(
    "--model",
    "-m",
    "refs",
    metavar="REF",
    multiple=True,
    help="Model to load at start; repeat for several (default: the configured embedding model). "
    "The built-in node loads any other local model a request names.",
)
@click.option(
    "--ip", default=DEFAULT_IP, show_default=True, help="Address to bind; non-loopback needs --api-key."
)
@click.option(
    "--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535), help="Port to bind."
)
@click.option(
    "--embed-url",
    metavar="URL",
    help="hanzod only: its embedding server (default: the model's provider's server if it serves the "
    "model, else a built-in node).",
)
@click.option("--api-key", metavar="KEY", envvar=ENV_API_KEY, help="Bearer key clients must send.")
@click.option("--runtime", metavar="NAME", help="Runtime to load the model with (built-in node).")
@click.option("--foreground", is_flag=True, help="Stay attached; Ctrl-C stops the node.")
@click.option(
    "--max-loaded",
    default=DEFAULT_MAX_LOADED,
    show_default=True,
    type=click.IntRange(min=0),
    help="Built-in node: models loaded at once; the least recently used idle one is unloaded (0: no limit).",
)
@click.option(
    "--keep-alive",
    default=f"{DEFAULT_KEEP_ALIVE:g}",
    show_default=True,
    metavar="DURATION",
    help="Built-in node: how long a model loaded on demand stays after its last request (seconds, or 5m, "
    "1h; negative: forever). A request's keep_alive wins.",
)
@click.option(
    "--max-memory",
    default=0,
    type=click.IntRange(min=0),
    metavar="BYTES",
    help="Built-in node: bytes of model files loaded at once; the least recently used idle model is "
    "unloaded to stay under it (0: no budget).",
)
@click.option(
    "--parallel",
    default=DEFAULT_PARALLEL,
    show_default=True,
    type=click.IntRange(min=1),
    help="Built-in node: generations each model decodes at once (continuous batching; each gets a full "
    "context, so KV-cache memory grows with it).",
)
@click.option("--pull-missing", is_flag=True, help="Built-in node: pull a requested model that is not local.")
@click.option(
    "--max-body",
    default=MAX_BODY_BYTES,
    show_default=True,
    type=click.IntRange(min=1),
    metavar="BYTES",
    help="Built-in node: largest request body (413 above it).",
)
@click.option(
    "--timeout",
    default=START_TIMEOUT,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds to wait for the node to become ready.",
)
@click.option(
    "--update/--no-update",
    default=None,
    help="Check the models for updates and pull changes before starting (default: the node.update setting).",
)
@click.option("--insecure", is_flag=True, help="With --update: allow plain-HTTP registries.")
@click.pass_context
def start_cmd(
    ctx: click.Context,
    refs: tuple[str, ...],
    ip: str,
    port: int,
    embed_url: str | None,
    api_key: str | None,
    runtime: str | None,
    foreground: bool,
    max_loaded: int,
    max_memory: int,
    parallel: int,
    keep_alive: str,
    pull_missing: bool,
    max_body: int,
    timeout: float,
    update: bool | None,
    insecure: bool,
) -> None:
    """Start the hanzo node: hanzod when installed (HANZOD_BIN or PATH), else the built-in node.

    The models are pulled first if they are missing. The node runs in the background (pidfile and log
    under hanzo's state and log folders) unless --foreground is given.
    """
    from hanzo_cli.api import UsageError
    from hanzo_cli.builtin.node import launch
    from hanzo_cli.builtin.node.keepalive import parse_cli_keep_alive
    from hanzo_cli.embedding import default_model_ref  # not public API yet

    try:
        parse_cli_keep_alive(keep_alive)
    except ValueError as exc:
        raise UsageError(f"--keep-alive: {exc}") from None
    server_args = ["--max-loaded", str(max_loaded), "--keep-alive", keep_alive, "--max-body", str(max_body)]
    server_args += ["--parallel", str(parallel)]
    if max_memory:
        server_args += ["--max-memory", str(max_memory)]
    if pull_missing:
        server_args.append("--pull-missing")
    models = list(dict.fromkeys(refs)) or [default_model_ref("embedding.model", "embed", "lightweight")]
    if update is None:
        from hanzo_cli.api import get_setting

        update = (get_setting("node.update") or "").strip().lower() in ("1", "true", "yes", "on")
    if update:
        from hanzo_cli.api import PullOptions
        from hanzo_cli.updates import refresh

        refresh(models, PullOptions(insecure=insecure))
    options = launch.StartOptions(
        model=models[0],
        more_models=tuple(models[1:]),
        server_args=tuple(server_args),
        ip=ip,
        port=port,
        api_key=api_key or None,
        embed_url=embed_url,
        runtime=runtime,
        foreground=foreground,
        timeout=timeout,
    )
    if foreground:
        ctx.exit(launch.run_foreground(options))
    state = launch.start(options)
    click.echo(state.main.url)


@click.command("node:stop")
@click.option(
    "--timeout",
    default=STOP_TIMEOUT,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to wait after SIGTERM before SIGKILL.",
)
def stop_cmd(timeout: float) -> None:
    """Stop the running node (SIGTERM, then SIGKILL after --timeout). Exits 0 if none was running."""
    from hanzo_cli.builtin.node import state as node

    stopped = node.stop(timeout)
    if stopped is None:
        click.echo("hanzo node is not running", err=True)
    else:
        click.echo(f"stopped hanzo node (pid {stopped.main.pid})", err=True)


@click.command("node:status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Show whether the node runs, and its health. Exit code: 0 healthy, 1 not running, 2 unhealthy."""
    from hanzo_cli.api import echo_json
    from hanzo_cli.builtin.node import state as node

    state = node.running()
    if state is None:
        if as_json:
            echo_json({"running": False, "healthy": False})
        else:
            click.echo("hanzo node is not running")
        ctx.exit(1)
    health = node.check_health(state.main.health_url)
    embed_health = node.check_health(state.embed_node.health_url) if state.embed_node else None
    healthy = health.ok and (embed_health is None or embed_health.ok)
    uptime = max(0.0, time.time() - state.started_at)
    if as_json:
        data = {
            "running": True,
            "healthy": healthy,
            "kind": state.kind,
            "pid": state.main.pid,
            "url": state.main.url,
            "model": state.model,
            "models": state.models,
            "started_at": state.started_at,
            "uptime_s": round(uptime, 1),
            "foreground": state.foreground,
            "log": state.main.log,
            "health": health.detail or {"error": health.error},
        }
        if state.embed_node is not None and embed_health is not None:
            data["embed_node"] = {
                "pid": state.embed_node.pid,
                "url": state.embed_node.url,
                "log": state.embed_node.log,
                "health": embed_health.detail or {"error": embed_health.error},
            }
        echo_json(data)
    else:
        rows = [
            ("status", "running" if healthy else "running, unhealthy"),
            ("kind", state.kind + (" (foreground)" if state.foreground else "")),
            ("pid", str(state.main.pid)),
            ("url", state.main.url),
            ("models" if len(state.models) > 1 else "model", ", ".join(state.models)),
            ("uptime", _duration(uptime)),
            ("health", health.describe()),
            ("log", state.main.log or "(on the terminal that started it)"),
        ]
        if state.embed_node and embed_health:
            rows += [
                ("embed node", f"pid {state.embed_node.pid}, {state.embed_node.url}"),
                ("embed health", embed_health.describe()),
                ("embed log", state.embed_node.log or "(on the terminal that started it)"),
            ]
        width = max(len(key) for key, _ in rows)
        for key, value in rows:
            click.echo(f"{key.ljust(width)}  {value}")
    ctx.exit(0 if healthy else 2)


@click.command("node:ps")
@click.option("--json", "as_json", is_flag=True, help="Print the node's /api/ps answer.")
def ps_cmd(as_json: bool) -> None:
    """List the models the running built-in node has loaded, with their size and when they unload."""
    import os

    import httpx

    from hanzo_cli.api import HanzoError, echo_json, human_size
    from hanzo_cli.builtin.node import state as node

    state = node.running()
    if state is None:
        raise HanzoError("hanzo node is not running (start it with: hanzo node:start)")
    served = state.main if state.kind == "builtin" else state.embed_node
    if served is None:
        raise HanzoError("this node is hanzod embedding elsewhere; node:ps lists the built-in node's models")
    key = os.environ.get(ENV_API_KEY)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.get(served.url + "/api/ps", headers=headers, timeout=10, trust_env=False)
        response.raise_for_status()
        loaded = response.json()["models"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise HanzoError(f"the node at {served.url} did not list its models: {exc}") from None
    if as_json:
        echo_json({"models": loaded})
        return
    rows = [("NAME", "SIZE", "UNTIL")]
    for model in loaded:
        rows.append((model["name"], human_size(model["size"]), _until(model.get("expires_at"))))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _until(expires_at: str | None) -> str:
    """When a model unloads, as ``ollama ps`` says it: "Forever", "4 minutes from now"."""
    from datetime import datetime, timezone

    if not expires_at:
        return "Forever"
    seconds = (datetime.fromisoformat(expires_at) - datetime.now(timezone.utc)).total_seconds()
    return "Stopping..." if seconds <= 0 else f"{_duration(seconds)} from now"


@click.command("node:logs")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option(
    "--lines", "-n", default=50, show_default=True, type=click.IntRange(min=0), help="Lines to show."
)
def logs_cmd(follow: bool, lines: int) -> None:
    """Show the node's log (the last node's, if none is running)."""
    from hanzo_cli.api import HanzoError, log_dir
    from hanzo_cli.builtin.node import state as node

    state = node.running()
    if state is not None and state.main.log is None:
        raise HanzoError("the node runs in the foreground: its log is on the terminal that started it")
    path = Path(state.main.log) if state and state.main.log else log_dir() / "node.log"
    if not path.exists():
        raise HanzoError(f"no node log yet ({path})")
    for line in node.tail(path, lines):
        click.echo(line)
    if follow:
        _follow(path)


def _follow(path: Path) -> None:
    """Print what is appended to the file until Ctrl-C."""
    with open(path, encoding="utf-8", errors="replace") as f:
        f.seek(0, 2)
        try:
            while True:
                chunk = f.read()
                if chunk:
                    click.echo(chunk, nl=False)
                else:
                    time.sleep(0.2)
        except KeyboardInterrupt:
            pass


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{value}{unit}" for value, unit in parts if value] or ["0s"]
    return " ".join(shown[:2])


@hookimpl
def register_commands(cli: click.Group) -> None:
    for command in (start_cmd, stop_cmd, status_cmd, ps_cmd, logs_cmd):
        cli.add_command(command)
