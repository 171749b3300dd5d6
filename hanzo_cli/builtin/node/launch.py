"""Starting the node: ``hanzod`` when it is installed, else the built-in node (the ``node`` extra).

- ``builtin``: ``python -m hanzo_cli.builtin.node.server`` (starlette + uvicorn) serves the pulled model
  with Ollama's and OpenAI's APIs and hanzod's health check;
- ``hanzod``: the Hanzo node binary (``HANZOD_BIN``, else ``hanzod`` on PATH), configured through its
  environment. Its embeddings come from ``--embed-url``, else from the model's provider when that
  provider's own server already serves it (:meth:`Provider.serving_url`), else from a built-in node
  that hanzo starts beside it on a free loopback port (stopped with it).

The model is pulled (and the serving decision made) before any process starts.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from hanzo_cli.api import HanzoError, MissingPluginError, ModelInfo, get_provider, info, log_dir, state_dir
from hanzo_cli.builtin.node.constants import (
    DEFAULT_IP,
    DEFAULT_PORT,
    ENV_API_KEY,
    ENV_HANZOD_API_IP,
    ENV_HANZOD_API_KEY,
    ENV_HANZOD_API_PORT,
    ENV_HANZOD_BIN,
    HANZOD_API_PORT,
    HEALTH_PATH,
    SERVER_MODULE,
    START_TIMEOUT,
    STOP_TIMEOUT,
)
from hanzo_cli.builtin.node.state import (
    NodeProcess,
    NodeState,
    check_health,
    clear_state,
    free_port,
    is_loopback,
    local_url,
    running,
    signal_process,
    tail,
    terminate,
    write_state,
)


@dataclass(frozen=True)
class StartOptions:
    """What ``node:start`` was asked for."""

    model: str
    ip: str = DEFAULT_IP
    port: int = DEFAULT_PORT
    api_key: str | None = None
    embed_url: str | None = None
    runtime: str | None = None
    foreground: bool = False
    timeout: float = START_TIMEOUT
    #: More models for the built-in node to load at start (``--model`` given several times).
    more_models: tuple[str, ...] = ()
    #: The built-in node's arguments beyond the models: --max-loaded, --keep-alive, --pull-missing …
    server_args: tuple[str, ...] = ()

    @property
    def models(self) -> list[str]:
        return [self.model, *self.more_models]


def hanzod_binary() -> str | None:
    """``HANZOD_BIN`` (which must be executable), else ``hanzod`` on PATH, else None."""
    configured = os.environ.get(ENV_HANZOD_BIN, "").strip()
    if configured:
        path = shutil.which(configured)
        if path is None:
            raise HanzoError(f"{ENV_HANZOD_BIN}={configured} is not an executable file")
        return path
    return shutil.which("hanzod")


def require_server_stack() -> None:
    """The built-in node's web stack, or a one-line error naming the extra that installs it."""
    try:
        import orjson  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise MissingPluginError(
            f"the built-in node needs {exc.name or 'starlette, uvicorn and orjson'}; "
            "install it with: pip install 'hanzo-cli[node]'"
        ) from None


def _require_free_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise HanzoError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _log_hint(log: str | None) -> str:
    """``": <the log's last error line>; log: PATH"`` for start-up failures (one line, no traceback)."""
    if log is None:
        return ""
    try:
        last = [line.strip() for line in tail(Path(log), 40) if line.strip()]
    except OSError:
        return f"; log: {log}"
    errors = [line for line in last if line.startswith("Error: ")]
    line = (errors or last or [""])[-1].removeprefix("Error: ")
    if len(line) > 300:
        line = line[:297] + "..."
    return f": {line}; log: {log}" if line else f"; log: {log}"


def _new_log(name: str) -> Path:
    """A fresh log file for a node; the previous one is kept as ``NAME.1``."""
    folder = log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if path.exists():
        os.replace(path, folder / f"{name}.1")
    return path


# ------------------------------------------------------------------------------------------------ start


@dataclass
class _Launch:
    """A process being started, and how to tell when it is ready."""

    popen: subprocess.Popen[bytes]
    record: NodeProcess
    what: str


def _spawn(argv: list[str], env: Mapping[str, str], log: Path | None) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session: detached with output to ``log``, or on this terminal."""
    out = open(log, "ab") if log else None  # the child gets its own copy of the descriptor
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as exc:
        raise HanzoError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    finally:
        if out:
            out.close()


def _launch_builtin(
    options: StartOptions, load_refs: list[str], ip: str, port: int, log: Path | None
) -> _Launch:
    argv = [sys.executable, "-m", SERVER_MODULE]
    for ref, name in zip(load_refs, options.models, strict=True):
        argv += ["--model", ref, "--name", name]
    argv += ["--host", ip, "--port", str(port), *options.server_args]
    if options.runtime:
        argv += ["--runtime", options.runtime]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop(ENV_API_KEY, None)
    if options.api_key:
        env[ENV_API_KEY] = options.api_key  # by environment, not argv: command lines are public (ps)
    url = local_url(ip, port)
    popen = _spawn(argv, env, log)
    # Its arguments identify it: a reused pid, even another hanzo node's, never matches all of them.
    marker = " ".join(argv[2:])
    record = NodeProcess(popen.pid, marker, url, url + HEALTH_PATH, str(log) if log else None)
    return _Launch(popen, record, "the built-in node")


def _launch_hanzod(
    binary: str,
    options: StartOptions,
    model_name: str,
    embed_url: str,
    own_embed_node: bool,
    log: Path | None,
) -> _Launch:
    env = {**os.environ}  # other NODE_* settings pass through untouched
    env.update(
        NODE_IP=options.ip,
        NODE_PORT=str(options.port),
        EMBEDDING_MODEL_TYPE=model_name,
        DEFAULT_EMBEDDING_MODEL=model_name,
        EMBEDDINGS_SERVER_URL=embed_url,
    )
    env.setdefault(ENV_HANZOD_API_IP, options.ip)  # hanzod's own default would be 0.0.0.0
    if options.api_key:
        env[ENV_HANZOD_API_KEY] = options.api_key  # hanzod's bearer token for its v2 API
        if own_embed_node:
            env["EMBEDDINGS_SERVER_API_KEY"] = options.api_key  # our embedding node checks it too
    api_url = local_url(env[ENV_HANZOD_API_IP], _hanzod_api_port())
    popen = _spawn([binary], env, log)
    record = NodeProcess(popen.pid, binary, api_url, api_url + HEALTH_PATH, str(log) if log else None)
    return _Launch(popen, record, "hanzod")


def _hanzod_api_port() -> int:
    """hanzod's API port (``NODE_API_PORT``, default 3690): where its health check answers."""
    value = os.environ.get(ENV_HANZOD_API_PORT) or str(HANZOD_API_PORT)
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise HanzoError(f"{ENV_HANZOD_API_PORT}={value} is not a port number")
    return int(value)


class _Stopped(Exception):
    """A signal stopped the foreground node while it was starting."""


def _wait_ready(launch: _Launch, timeout: float, stopping: list[bool]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code = launch.popen.poll()
        if code is not None:
            if stopping:
                raise _Stopped
            raise HanzoError(
                f"{launch.what} exited during start-up (exit code {code}){_log_hint(launch.record.log)}"
            )
        health = check_health(launch.record.health_url, timeout=1.0)
        if health.ok:
            return
        if time.monotonic() >= deadline:
            raise HanzoError(
                f"{launch.what} was not ready after {timeout:.0f} s ({health.error})"
                f"{_log_hint(launch.record.log)}"
            )
        time.sleep(0.1)


@dataclass(frozen=True)
class _Plan:
    """What to start, decided (and the model pulled) before any process starts."""

    options: StartOptions
    hanzod: str | None  # the binary, or None for the built-in node
    load_refs: list[str]  # provider:name of each pulled model, for the built-in node to load
    model_name: str  # the name hanzod asks its embedding server for
    embed_url: str | None  # hanzod's embedding server when not a built-in node of ours


def _plan(options: StartOptions) -> _Plan:
    binary = hanzod_binary()
    if options.embed_url and binary is None:
        raise HanzoError(
            "--embed-url configures hanzod, which is not installed (set HANZOD_BIN or put it on PATH)"
        )
    _require_key(options, hanzod=binary is not None)
    if binary is not None:
        _hanzod_api_port()
    existing = running()
    if existing is not None:
        raise _already_running(existing)
    if binary is None:
        require_server_stack()
        _require_free_port(options.ip, options.port)
        return _Plan(options, None, _pull_all(options), options.model, None)
    if options.embed_url:  # hanzod embeds elsewhere: nothing to pull here
        return _Plan(options, binary, options.models, options.model, options.embed_url)
    found = _pull(options.model)
    url = serving_url(found) if not options.more_models else None
    if url is not None:  # hanzod embeds there, asking for the model by its provider's own name
        return _Plan(options, binary, [f"{found.provider}:{found.name}"], found.name, url)
    require_server_stack()
    return _Plan(options, binary, _pull_all(options), options.model, None)


def _pull_all(options: StartOptions) -> list[str]:
    """Each model pulled when missing; their provider:name references."""
    refs = []
    for ref in options.models:
        found = _pull(ref)
        refs.append(f"{found.provider}:{found.name}")
    return refs


def _require_key(options: StartOptions, hanzod: bool) -> None:
    """Anything but a loopback bind needs an API key (hanzod also accepts its own ``API_V2_KEY``)."""
    hosts = [options.ip]
    if hanzod:
        hosts.append(os.environ.get(ENV_HANZOD_API_IP) or options.ip)
    exposed = [h for h in hosts if not is_loopback(h)]
    has_key = bool(options.api_key) or (hanzod and bool(os.environ.get(ENV_HANZOD_API_KEY)))
    if exposed and not has_key:
        raise HanzoError(
            f"binding {exposed[0]} exposes the node beyond this machine: give an API key with "
            f"--api-key or {ENV_API_KEY}"
        )


def serving_url(model: ModelInfo) -> str | None:
    """The URL of the model's provider's own server when it already serves the model: the provider
    decides (and reads its own settings, such as where its server is); the node never does."""
    return get_provider(model.provider).serving_url(model)


def _pull(ref: str) -> ModelInfo:
    """The local model, pulled first when missing (progress on stderr)."""
    from hanzo_cli import models  # reference resolution is not public API yet

    return models.ensure(ref)


@contextmanager
def _start_lock() -> Iterator[None]:
    from filelock import FileLock, Timeout

    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / "node.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise HanzoError("another hanzo node:start is in progress") from None
    try:
        yield
    finally:
        lock.release()


def _already_running(state: NodeState) -> HanzoError:
    return HanzoError(
        f"a hanzo node is already running (pid {state.main.pid}, {state.main.url}, model {state.model}); "
        "stop it with: hanzo node:stop"
    )


def _launch(plan: _Plan, launches: list[_Launch], stopping: list[bool]) -> NodeState:
    """Start the node's processes (appending each to ``launches`` at once, for clean-up), record the
    state and wait until the node is ready."""
    options = plan.options

    def log(name: str) -> Path | None:
        return None if options.foreground else _new_log(name)

    def add(launch: _Launch) -> _Launch:
        launches.append(launch)
        if stopping:  # a signal came while it was being spawned
            signal_process(launch.popen.pid, signal.SIGTERM)
        return launch

    # The lock covers everything up to the state write, so two node:start never both launch.
    with _start_lock():
        existing = running()
        if existing is not None:
            raise _already_running(existing)
        embed_node = None
        if plan.hanzod is None:
            main = add(_launch_builtin(options, plan.load_refs, options.ip, options.port, log("node.log")))
        else:
            embed_url = plan.embed_url
            if embed_url is None:  # a built-in node on a free loopback port embeds for hanzod
                helper = add(
                    _launch_builtin(options, plan.load_refs, DEFAULT_IP, free_port(), log("node-embed.log"))
                )
                info(f"starting the built-in embedding node for hanzod (pid {helper.popen.pid})")
                _wait_ready(helper, options.timeout, stopping)
                embed_node, embed_url = helper.record, helper.record.url
            main = add(
                _launch_hanzod(
                    plan.hanzod, options, plan.model_name, embed_url, embed_node is not None, log("node.log")
                )
            )
        state = NodeState(
            kind="builtin" if plan.hanzod is None else "hanzod",
            model=options.model,
            models=options.models,
            started_at=time.time(),
            foreground=options.foreground,
            main=main.record,
            embed_node=embed_node,
        )
        write_state(state)
    info(f"starting {main.what} (pid {main.popen.pid}, {_count(options.models)})")
    _wait_ready(main, options.timeout, stopping)
    return state


def _count(models: list[str]) -> str:
    return f"model {models[0]}" if len(models) == 1 else f"models {', '.join(models)}"


def _cleanup(launches: list[_Launch]) -> None:
    for launch in reversed(launches):
        terminate(launch.record, STOP_TIMEOUT)
        launch.popen.poll()  # reap it
    if launches:
        clear_state(launches[-1].record.pid)


def start(options: StartOptions) -> NodeState:
    """Pull the model if needed, start the node in the background and return once it is ready."""
    plan = _plan(options)
    launches: list[_Launch] = []
    try:
        state = _launch(plan, launches, [])
    except BaseException:
        _cleanup(launches)
        raise
    info(f"hanzo node ready at {state.main.url} (pid {state.main.pid}); log: {state.main.log}")
    return state


def run_foreground(options: StartOptions) -> int:
    """Start the node attached to this terminal and wait for it. Ctrl-C or SIGTERM stop it gracefully
    (forwarded once to the node, which runs in its own session); returns the exit code to use."""
    plan = _plan(options)
    launches: list[_Launch] = []
    stopping: list[bool] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if not stopping:
            stopping.append(True)
            for launch in launches:
                if launch.popen.returncode is None:
                    signal_process(launch.popen.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        state = _launch(plan, launches, stopping)
        info(f"hanzo node ready at {state.main.url} (pid {state.main.pid}); Ctrl-C stops it")
        code = launches[-1].popen.wait()
    except _Stopped:
        code = 0
    finally:
        _cleanup(launches)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stopping:
        info("hanzo node stopped")
        return 0
    if code:
        raise HanzoError(f"the node exited with code {code}")
    return 0
