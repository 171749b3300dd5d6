"""The hanzo node: one background (or foreground) process that serves an embedding model over HTTP.

Two kinds of node:

- ``builtin``: ``python -m hanzo_cli.node_server`` (starlette + uvicorn, the ``node`` extra) serves the
  pulled model with Ollama's and OpenAI's embedding APIs and hanzod's health check;
- ``hanzod``: the Hanzo node binary (``HANZOD_BIN``, else ``hanzod`` on PATH), configured through its
  environment. Its embeddings come from ``--embed-url``, else from Ollama when the model is an Ollama
  model and an Ollama server answers, else from a built-in node that hanzo starts beside it on a free
  loopback port (stopped with it).

State lives in ``state_dir()``: ``node.pid`` (the pid) and ``node.json`` (:class:`NodeState`), both
written atomically; logs in ``log_dir()``. A pidfile is trusted only while its process is alive AND
its command line still holds what hanzo started (pids are reused); anything else is stale and removed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from hanzo_cli.constants import log_dir, state_dir
from hanzo_cli.errors import HanzoError, MissingPluginError

DEFAULT_IP = "127.0.0.1"
DEFAULT_PORT = 9452
HANZOD_API_PORT = 3690
OLLAMA_PORT = 11434
HEALTH_PATH = "/v2/health_check"
API_KEY_ENV = "HANZO_NODE_API_KEY"
SERVER_MODULE = "hanzo_cli.node_server"
#: Seconds ``node:start`` waits for the health check to say ready (loading a large model takes a while).
START_TIMEOUT = 300.0
STOP_TIMEOUT = 10.0


@dataclass
class NodeProcess:
    """A process hanzo started: how to find it, recognise it (``marker`` is part of its command line,
    so a reused pid is not mistaken for it), reach it, and read its log."""

    pid: int
    marker: str
    url: str
    health_url: str
    log: str | None


@dataclass
class NodeState:
    """What ``node.json`` holds about the running node."""

    kind: str  # "builtin" or "hanzod"
    model: str
    started_at: float  # Unix time
    foreground: bool
    main: NodeProcess
    #: The built-in node a hanzod node embeds through, when hanzo started one for it.
    embed_node: NodeProcess | None = None

    @property
    def processes(self) -> list[NodeProcess]:
        return [self.main, *([self.embed_node] if self.embed_node else [])]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeState:
        embed = data.get("embed_node")
        return cls(
            kind=str(data["kind"]),
            model=str(data["model"]),
            started_at=float(data["started_at"]),
            foreground=bool(data["foreground"]),
            main=NodeProcess(**data["main"]),
            embed_node=NodeProcess(**embed) if embed else None,
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


# ------------------------------------------------------------------------------------------- state files


def state_path() -> Path:
    return state_dir() / "node.json"


def pid_path() -> Path:
    return state_dir() / "node.pid"


def read_state() -> NodeState | None:
    """The recorded node (alive or not), or None. Unreadable state counts as none."""
    try:
        return NodeState.from_json(json.loads(state_path().read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _write_state(state: NodeState) -> None:
    from hanzo_cli.fsutil import atomic_write

    atomic_write(pid_path(), f"{state.main.pid}\n".encode())
    atomic_write(state_path(), (json.dumps(state.to_json(), indent=2) + "\n").encode())


def _clear_state(pid: int | None = None) -> None:
    """Remove the state files (only if they still describe ``pid``, when given)."""
    if pid is not None:
        current = read_state()
        if current is not None and current.main.pid != pid:
            return
    state_path().unlink(missing_ok=True)
    pid_path().unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------- processes


def _cmdline(pid: int) -> str | None:
    """The process's command line (arguments joined by spaces), or None when there is no such live
    process (zombies included: their command line is empty)."""
    proc = Path(f"/proc/{pid}/cmdline")
    if Path("/proc/self").exists():
        try:
            raw = proc.read_bytes()
        except OSError:
            return None
        return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip() or None
    try:  # no /proc (macOS, BSD): ask ps
        out = subprocess.run(["ps", "-p", str(pid), "-o", "stat=,command="], capture_output=True, text=True)
    except OSError:
        return None
    stat, _, command = out.stdout.strip().partition(" ")
    return None if out.returncode or stat.startswith("Z") else command.strip() or None


def is_alive(process: NodeProcess) -> bool:
    """Whether ``process`` still runs and is still the program hanzo started (not a reused pid)."""
    command = _cmdline(process.pid)
    return command is not None and process.marker in command


def running() -> NodeState | None:
    """The running node, or None. Stale state (its process died or the pid now belongs to another
    program) is removed, and a helper process it left behind is stopped."""
    state = read_state()
    if state is None:
        if state_path().exists() or pid_path().exists():
            _clear_state()  # unreadable leftovers
        return None
    if is_alive(state.main):
        return state
    from hanzo_cli.output import info

    if state.embed_node is not None:
        _terminate(state.embed_node, STOP_TIMEOUT)
    _clear_state(state.main.pid)
    info(f"removed stale node state (pid {state.main.pid} is no longer a hanzo node)")
    return None


def _terminate(process: NodeProcess, timeout: float) -> bool:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. False if it was not running."""
    if not is_alive(process):
        return False
    _signal(process.pid, signal.SIGTERM)
    if not _wait_gone(process, timeout):
        _signal(process.pid, signal.SIGKILL)
        _wait_gone(process, 5.0)
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        # hanzo starts each node as the leader of its own session: signal its whole process group,
        # so helpers the node started go too.
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(process: NodeProcess, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_alive(process):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop(timeout: float = STOP_TIMEOUT) -> NodeState | None:
    """Stop the running node (hanzod before the embedding node it uses); None if none was running."""
    state = running()
    if state is None:
        return None
    for process in state.processes:
        _terminate(process, timeout)
    _clear_state(state.main.pid)
    return state


# ------------------------------------------------------------------------------------------------ health


@dataclass
class Health:
    """What a node's ``/v2/health_check`` said (``ok``: answered ``status: ok`` and ready)."""

    ok: bool
    detail: dict[str, Any] | None = None
    error: str | None = None

    def describe(self) -> str:
        if self.ok:
            return "ok (ready)"
        return f"unhealthy: {self.error}"


def check_health(url: str, timeout: float = 2.0) -> Health:
    import httpx

    try:
        response = httpx.get(url, timeout=timeout, trust_env=False)  # loopback: never via a proxy
    except httpx.HTTPError as exc:
        return Health(False, error=f"not answering at {url} ({type(exc).__name__})")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return Health(False, error=f"HTTP {response.status_code} without a JSON health report")
    if response.status_code == 200 and body.get("status") == "ok" and body.get("ready", True):
        return Health(True, body)
    reason = body.get("error") or ("not ready" if body.get("ready") is False else body.get("status"))
    return Health(False, body, f"{reason} (HTTP {response.status_code})")


# ----------------------------------------------------------------------------------------------- helpers


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def local_url(host: str, port: int) -> str:
    """An http URL that reaches a server bound to ``host`` from this machine."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def ollama_url() -> str:
    """Ollama's base URL from ``OLLAMA_HOST`` (default ``http://127.0.0.1:11434``)."""
    value = os.environ.get("OLLAMA_HOST", "").strip() or f"127.0.0.1:{OLLAMA_PORT}"
    parts = urlsplit(value if "://" in value else f"http://{value}")
    return local_url(parts.hostname or "127.0.0.1", parts.port or OLLAMA_PORT)


def hanzod_binary() -> str | None:
    """``HANZOD_BIN`` (which must be executable), else ``hanzod`` on PATH, else None."""
    configured = os.environ.get("HANZOD_BIN", "").strip()
    if configured:
        path = shutil.which(configured)
        if path is None:
            raise HanzoError(f"HANZOD_BIN={configured} is not an executable file")
        return path
    return shutil.which("hanzod")


def require_server_stack() -> None:
    """The built-in node's web stack, or a one-line error naming the extra that installs it."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise MissingPluginError(
            f"the built-in node needs {exc.name or 'starlette and uvicorn'}; "
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


def free_port(host: str = DEFAULT_IP) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        return [line.rstrip("\n") for line in deque(f, maxlen=lines)] if lines > 0 else []


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


def _launch_builtin(options: StartOptions, load_ref: str, ip: str, port: int, log: Path | None) -> _Launch:
    argv = [sys.executable, "-m", SERVER_MODULE, "--model", load_ref, "--name", options.model]
    argv += ["--host", ip, "--port", str(port)]
    if options.runtime:
        argv += ["--runtime", options.runtime]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop(API_KEY_ENV, None)
    if options.api_key:
        env[API_KEY_ENV] = options.api_key  # by environment, not argv: command lines are public (ps)
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
    env.setdefault("NODE_API_IP", options.ip)  # hanzod's own default would be 0.0.0.0
    if options.api_key:
        env["API_V2_KEY"] = options.api_key  # hanzod's bearer token for its v2 API
        if own_embed_node:
            env["EMBEDDINGS_SERVER_API_KEY"] = options.api_key  # our embedding node checks it too
    api_url = local_url(env["NODE_API_IP"], _hanzod_api_port())
    popen = _spawn([binary], env, log)
    record = NodeProcess(popen.pid, binary, api_url, api_url + HEALTH_PATH, str(log) if log else None)
    return _Launch(popen, record, "hanzod")


def _hanzod_api_port() -> int:
    """hanzod's API port (``NODE_API_PORT``, default 3690): where its health check answers."""
    value = os.environ.get("NODE_API_PORT") or str(HANZOD_API_PORT)
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise HanzoError(f"NODE_API_PORT={value} is not a port number")
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
    load_ref: str  # provider:name of the pulled model, for the built-in node to load
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
        return _Plan(options, None, _pull(options.model)[0], options.model, None)
    if options.embed_url:  # hanzod embeds elsewhere: nothing to pull here
        return _Plan(options, binary, options.model, options.model, options.embed_url)
    load_ref, provider = _pull(options.model)
    if provider == "ollama" and (url := _ollama_serving()) is not None:
        return _Plan(options, binary, load_ref, load_ref.split(":", 1)[1], url)  # Ollama's own name
    require_server_stack()
    return _Plan(options, binary, load_ref, options.model, None)


def _require_key(options: StartOptions, hanzod: bool) -> None:
    """Anything but a loopback bind needs an API key (hanzod also accepts its own ``API_V2_KEY``)."""
    hosts = [options.ip]
    if hanzod:
        hosts.append(os.environ.get("NODE_API_IP") or options.ip)
    exposed = [h for h in hosts if not is_loopback(h)]
    has_key = bool(options.api_key) or (hanzod and bool(os.environ.get("API_V2_KEY")))
    if exposed and not has_key:
        raise HanzoError(
            f"binding {exposed[0]} exposes the node beyond this machine: give an API key with "
            f"--api-key or {API_KEY_ENV}"
        )


def _pull(ref: str) -> tuple[str, str]:
    """Pull the model when missing (progress on stderr); return (provider:name, provider)."""
    from hanzo_cli import models

    found = models.ensure(ref)
    return f"{found.provider}:{found.name}", found.provider


def _ollama_serving() -> str | None:
    """Ollama's URL if an Ollama server answers there now."""
    import httpx

    url = ollama_url()
    try:
        httpx.get(url + "/api/version", timeout=0.5, trust_env=False).raise_for_status()
    except httpx.HTTPError:
        return None
    return url


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
            _signal(launch.popen.pid, signal.SIGTERM)
        return launch

    from hanzo_cli.output import info

    # The lock covers everything up to the state write, so two node:start never both launch.
    with _start_lock():
        existing = running()
        if existing is not None:
            raise _already_running(existing)
        embed_node = None
        if plan.hanzod is None:
            main = add(_launch_builtin(options, plan.load_ref, options.ip, options.port, log("node.log")))
        else:
            embed_url = plan.embed_url
            if embed_url is None:  # a built-in node on a free loopback port embeds for hanzod
                helper = add(
                    _launch_builtin(options, plan.load_ref, DEFAULT_IP, free_port(), log("node-embed.log"))
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
            started_at=time.time(),
            foreground=options.foreground,
            main=main.record,
            embed_node=embed_node,
        )
        _write_state(state)
    info(f"starting {main.what} (pid {main.popen.pid}, model {options.model})")
    _wait_ready(main, options.timeout, stopping)
    return state


def _cleanup(launches: list[_Launch]) -> None:
    for launch in reversed(launches):
        _terminate(launch.record, STOP_TIMEOUT)
        launch.popen.poll()  # reap it
    if launches:
        _clear_state(launches[-1].record.pid)


def start(options: StartOptions) -> NodeState:
    """Pull the model if needed, start the node in the background and return once it is ready."""
    plan = _plan(options)
    launches: list[_Launch] = []
    try:
        state = _launch(plan, launches, [])
    except BaseException:
        _cleanup(launches)
        raise
    from hanzo_cli.output import info

    info(f"hanzo node ready at {state.main.url} (pid {state.main.pid}); log: {state.main.log}")
    return state


def run_foreground(options: StartOptions) -> int:
    """Start the node attached to this terminal and wait for it. Ctrl-C or SIGTERM stop it gracefully
    (forwarded once to the node, which runs in its own session); returns the exit code to use."""
    from hanzo_cli.output import info

    plan = _plan(options)
    launches: list[_Launch] = []
    stopping: list[bool] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if not stopping:
            stopping.append(True)
            for launch in launches:
                if launch.popen.returncode is None:
                    _signal(launch.popen.pid, signal.SIGTERM)

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
