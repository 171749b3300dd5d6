"""node:start / node:stop / node:status without a model runtime: refusals, stale state, and the hanzod
path with a stand-in executable."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hanzo_cli.builtin.node.state import free_port
from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo
from tests.node.standin import recorded, write_standin


def state_file() -> Path:
    return Path(os.environ["HANZO_HOME"]) / "state" / "node.json"


def test_stop_and_status_when_not_running() -> None:
    proc = run_hanzo("node:stop")
    assert proc.returncode == 0 and "not running" in proc.stderr
    proc = run_hanzo("node:status")
    assert proc.returncode == 1 and "not running" in proc.stdout
    proc = run_hanzo("node:status", "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout) == {"running": False, "healthy": False}
    assert_one_line_error(run_hanzo("node:logs"), "no node log yet")


@pytest.mark.parametrize("ip", ["0.0.0.0", "192.0.2.1", "::", "example.org"])
def test_non_loopback_bind_needs_an_api_key(ip: str) -> None:
    proc = run_hanzo("node:start", "--model", "minilm", "--ip", ip)
    assert_one_line_error(proc, f"binding {ip}", "--api-key", "HANZO_NODE_API_KEY")
    assert not state_file().exists()


def test_port_in_use_is_refused_before_anything_starts() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_hanzo("node:start", "--model", "minilm", "--port", str(port))
    assert_one_line_error(proc, f"cannot listen on 127.0.0.1:{port}")
    assert not state_file().exists()


def test_missing_model_is_an_error_before_start() -> None:
    proc = run_hanzo("node:start", "--model", "local:nothing-here", "--port", str(free_port()))
    assert_one_line_error(proc, "cannot pull")
    assert not state_file().exists()


def test_missing_server_stack_names_the_extra(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "uvicorn"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'uvicorn'\", name='uvicorn')\n")
    proc = run_hanzo("node:start", "--model", "minilm", env={"PYTHONPATH": str(shadow.parent)})
    assert_one_line_error(proc, "uvicorn", "pip install 'hanzo-cli[node]'")


def test_model_that_cannot_load_reports_the_nodes_error(unknown_arch_gguf: Path) -> None:
    assert run_hanzo("model:import", str(unknown_arch_gguf), "--name", "foobar").returncode == 0
    proc = run_hanzo("node:start", "--model", "foobar", "--port", str(free_port()), "--timeout", "60")
    assert_one_line_error(proc, "exited during start-up", "foobar", "log: ")
    assert not state_file().exists()
    log = Path(os.environ["HANZO_HOME"]) / "logs" / "node.log"
    assert "Error: " in log.read_text()


def test_stale_pid_of_another_program_is_never_signalled(tmp_path: Path) -> None:
    """A pidfile whose pid now belongs to another program is stale: removed, that program left alone."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state = {
            "kind": "builtin",
            "model": "minilm",
            "started_at": time.time(),
            "foreground": False,
            "main": {
                "pid": other.pid,
                "marker": "hanzo_cli.builtin.node.server",
                "url": "http://127.0.0.1:9",
                "health_url": "http://127.0.0.1:9/v2/health_check",
                "log": None,
            },
            "embed_node": None,
        }
        state_file().parent.mkdir(parents=True)
        state_file().write_text(json.dumps(state))
        proc = run_hanzo("node:stop")
        assert proc.returncode == 0 and "not running" in proc.stderr and "stale" in proc.stderr
        assert not state_file().exists()
        assert other.poll() is None  # still running: it was never ours
    finally:
        other.kill()
        other.wait()


def test_garbage_state_is_cleaned_up() -> None:
    state_file().parent.mkdir(parents=True)
    state_file().write_text("{not json")
    assert run_hanzo("node:status").returncode == 1
    assert not state_file().exists()


def test_embed_url_needs_hanzod() -> None:
    proc = run_hanzo("node:start", "--model", "minilm", "--embed-url", "http://127.0.0.1:9")
    assert_one_line_error(proc, "--embed-url", "hanzod")


def test_hanzod_bin_must_be_executable(tmp_path: Path) -> None:
    proc = run_hanzo("node:start", "--model", "minilm", env={"HANZOD_BIN": str(tmp_path / "missing")})
    assert_one_line_error(proc, "HANZOD_BIN", "not an executable")


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HANZOD_BIN = the stand-in; its API port free; returns the file it records its environment in."""
    monkeypatch.setenv("HANZOD_BIN", str(write_standin(tmp_path)))
    monkeypatch.setenv("NODE_API_PORT", str(free_port()))
    record = tmp_path / "hanzod-env.json"
    monkeypatch.setenv("STANDIN_RECORD", str(record))
    return record


def test_hanzod_gets_its_environment_and_is_managed(standin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_STORAGE_PATH", "/tmp/somewhere")  # other NODE_* settings pass through
    monkeypatch.setenv("NODE_API_IP", "127.0.0.1")
    proc = run_hanzo(
        "node:start",
        "--model",
        "qwen3-embedding-8b",
        "--ip",
        "0.0.0.0",
        "--port",
        "9999",
        "--api-key",
        "s3cret",
        "--embed-url",
        "http://127.0.0.1:11434",
        "--timeout",
        "60",
    )
    assert proc.returncode == 0, proc.stderr
    api_url = f"http://127.0.0.1:{os.environ['NODE_API_PORT']}"
    assert proc.stdout.strip() == api_url
    env = recorded(standin)["env"]
    assert isinstance(env, dict)
    assert env["NODE_IP"] == "0.0.0.0" and env["NODE_PORT"] == "9999"
    assert env["EMBEDDING_MODEL_TYPE"] == env["DEFAULT_EMBEDDING_MODEL"] == "qwen3-embedding-8b"
    assert env["EMBEDDINGS_SERVER_URL"] == "http://127.0.0.1:11434"
    assert env["API_V2_KEY"] == "s3cret"
    assert env["NODE_STORAGE_PATH"] == "/tmp/somewhere"
    assert "EMBEDDINGS_SERVER_API_KEY" not in env  # not ours to give to someone else's server

    status = hanzo_json("node:status", "--json")
    assert status["kind"] == "hanzod" and status["healthy"] is True
    assert status["url"] == api_url and status["health"]["node_name"] == "@@stand-in"
    assert status["model"] == "qwen3-embedding-8b" and status["log"].endswith("node.log")

    again = run_hanzo("node:start", "--model", "qwen3-embedding-8b", "--embed-url", "http://127.0.0.1:11434")
    assert_one_line_error(again, "already running", str(status["pid"]))

    logs = run_hanzo("node:logs", "-n", "5")
    assert logs.returncode == 0 and "stand-in hanzod listening" in logs.stdout

    proc = run_hanzo("node:stop")
    assert proc.returncode == 0 and f"pid {status['pid']}" in proc.stderr
    assert (standin.parent / (standin.name + ".stopped")).read_text() == str(int(signal.SIGTERM))
    assert not state_file().exists()
    assert run_hanzo("node:status").returncode == 1


def test_hanzod_api_ip_defaults_to_the_node_ip(standin: Path) -> None:
    """hanzod's own default API bind is 0.0.0.0; hanzo binds it where the node binds (loopback)."""
    proc = run_hanzo("node:start", "--model", "m", "--embed-url", "http://127.0.0.1:9", "--timeout", "60")
    assert proc.returncode == 0, proc.stderr
    env = recorded(standin)["env"]
    assert isinstance(env, dict)
    assert env["NODE_IP"] == env["NODE_API_IP"] == "127.0.0.1" and env["NODE_PORT"] == "9452"
    assert "API_V2_KEY" not in env


def test_hanzod_exposed_api_needs_a_key(standin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_API_IP", "0.0.0.0")
    proc = run_hanzo("node:start", "--model", "m", "--embed-url", "http://127.0.0.1:9")
    assert_one_line_error(proc, "binding 0.0.0.0", "--api-key")
    monkeypatch.setenv("API_V2_KEY", "hanzods-own-key")  # hanzod's own key setting is good enough
    proc = run_hanzo("node:start", "--model", "m", "--embed-url", "http://127.0.0.1:9", "--timeout", "60")
    assert proc.returncode == 0, proc.stderr


def test_hanzod_dying_at_start_reports_its_last_error(standin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_FAIL", "1")
    proc = run_hanzo("node:start", "--model", "m", "--embed-url", "http://127.0.0.1:9", "--timeout", "60")
    assert_one_line_error(
        proc, "hanzod exited during start-up (exit code 3)", "identity secret key is missing"
    )
    assert not state_file().exists()


def test_killed_hanzod_is_detected_and_restartable(standin: Path) -> None:
    args = ("node:start", "--model", "m", "--embed-url", "http://127.0.0.1:9", "--timeout", "60")
    assert run_hanzo(*args).returncode == 0
    pid = hanzo_json("node:status", "--json")["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while run_hanzo("node:status").returncode != 1:
        assert time.monotonic() < deadline
    assert not state_file().exists()
    assert run_hanzo(*args).returncode == 0
    assert hanzo_json("node:status", "--json")["pid"] != pid


def test_hanzod_bad_api_port(standin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_API_PORT", "http")
    proc = run_hanzo("node:start", "--model", "m", "--embed-url", "http://127.0.0.1:9")
    assert_one_line_error(proc, "NODE_API_PORT=http")


def test_hanzod_embeds_through_ollama_when_it_serves_the_model(
    standin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Ollama model with an Ollama server answering: pulled first (it is missing), then hanzod is pointed
    at Ollama, under Ollama's name for it."""
    pytest.importorskip("hanzo_ollama")
    from tests.ollama.fake_ollama import FakeModel, FakeOllama

    with FakeOllama(tmp_path / "ollama-blobs") as server:
        server.add(FakeModel("dengcao/Qwen3-Embedding-0.6B:Q8_0", [b"weights"]))
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        proc = run_hanzo(
            "node:start", "--model", "ollama:dengcao/Qwen3-Embedding-0.6B:Q8_0", "--timeout", "60"
        )
        assert proc.returncode == 0, proc.stderr
        assert "pulling it first" in proc.stderr and len(server.calls("/api/pull")) == 1
        env = recorded(standin)["env"]
        assert isinstance(env, dict)
        assert env["EMBEDDINGS_SERVER_URL"] == server.url
        assert env["DEFAULT_EMBEDDING_MODEL"] == "dengcao/Qwen3-Embedding-0.6B:Q8_0"
        status = hanzo_json("node:status", "--json")
        assert status["kind"] == "hanzod" and "embed_node" not in status
        assert status["model"] == "ollama:dengcao/Qwen3-Embedding-0.6B:Q8_0"
        assert run_hanzo("node:stop").returncode == 0
