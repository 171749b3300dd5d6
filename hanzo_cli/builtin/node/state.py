"""The node's records and processes: its state files, whether it runs, stopping it, its health.

State lives in ``state_dir()``: ``node.pid`` (the pid) and ``node.json`` (:class:`NodeState`), both
written atomically; logs in ``log_dir()``. A pidfile is trusted only while its process is alive AND
its command line still holds what hanzo started (pids are reused); anything else is stale and removed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hanzo_cli.api import atomic_write, info, state_dir
from hanzo_cli.builtin.node.constants import DEFAULT_IP, STOP_TIMEOUT


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
    #: Every model loaded at start (``model`` is the first).
    models: list[str] = field(default_factory=list)

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
            models=[str(m) for m in data.get("models") or [data["model"]]],
        )


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


def write_state(state: NodeState) -> None:
    atomic_write(pid_path(), f"{state.main.pid}\n".encode())
    atomic_write(state_path(), (json.dumps(state.to_json(), indent=2) + "\n").encode())


def clear_state(pid: int | None = None) -> None:
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
            clear_state()  # unreadable leftovers
        return None
    if is_alive(state.main):
        return state
    if state.embed_node is not None:
        terminate(state.embed_node, STOP_TIMEOUT)
    clear_state(state.main.pid)
    info(f"removed stale node state (pid {state.main.pid} is no longer a hanzo node)")
    return None


def terminate(process: NodeProcess, timeout: float) -> bool:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. False if it was not running."""
    if not is_alive(process):
        return False
    signal_process(process.pid, signal.SIGTERM)
    if not _wait_gone(process, timeout):
        signal_process(process.pid, signal.SIGKILL)
        _wait_gone(process, 5.0)
    return True


def signal_process(pid: int, sig: signal.Signals) -> None:
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
        terminate(process, timeout)
    clear_state(state.main.pid)
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


def free_port(host: str = DEFAULT_IP) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        return [line.rstrip("\n") for line in deque(f, maxlen=lines)] if lines > 0 else []
