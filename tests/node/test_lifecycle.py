"""node:start / node:status / node:logs / node:stop with the real built-in node (llama.cpp, MiniLM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import ollama
import pytest

from hanzo_cli.builtin.node.state import free_port
from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo
from tests.node.conftest import wait_healthy
from tests.node.standin import recorded, write_standin

pytestmark = pytest.mark.usefixtures("llama")


def start(*args: str, env: dict[str, str] | None = None) -> str:
    """``hanzo node:start ARGS`` on a free port; returns the URL it printed."""
    proc = run_hanzo("node:start", "--port", str(free_port()), "--timeout", "120", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def alive(pid: int) -> bool:
    try:
        return "hanzo_cli.builtin.node.server" in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


def test_start_status_logs_stop(minilm_ref: str) -> None:
    url = start("--model", minilm_ref)
    status = hanzo_json("node:status", "--json")
    assert status["running"] is True and status["healthy"] is True
    assert status["kind"] == "builtin" and status["url"] == url and status["model"] == "minilm"
    assert status["health"]["ready"] is True and status["uptime_s"] >= 0
    pid = status["pid"]
    assert alive(pid)
    state_dir = Path(os.environ["HANZO_HOME"]) / "state"
    assert (state_dir / "node.pid").read_text().strip() == str(pid)

    text = run_hanzo("node:status")
    assert text.returncode == 0 and "health  ok (ready)" in text.stdout and url in text.stdout

    vectors = httpx.post(url + "/api/embed", json={"model": "minilm", "input": ["a", "b"]}).json()[
        "embeddings"
    ]
    assert len(vectors) == 2 and len(vectors[0]) == 384

    assert_one_line_error(run_hanzo("node:start", "--model", minilm_ref), "already running", str(pid))
    assert alive(pid) and hanzo_json("node:status", "--json")["pid"] == pid

    logs = run_hanzo("node:logs", "-n", "100")
    assert logs.returncode == 0 and "loaded local:minilm" in logs.stdout

    stop = run_hanzo("node:stop")
    assert stop.returncode == 0 and f"stopped hanzo node (pid {pid})" in stop.stderr
    assert not alive(pid)
    assert not (state_dir / "node.pid").exists() and not (state_dir / "node.json").exists()
    assert run_hanzo("node:status").returncode == 1
    after = run_hanzo("node:logs", "-n", "3")  # the last node's log stays readable
    assert after.returncode == 0 and "Finished server process" in after.stdout


def test_kill_9_then_status_and_start_recover(minilm_ref: str) -> None:
    start("--model", minilm_ref)
    pid = hanzo_json("node:status", "--json")["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status = run_hanzo("node:status")
    assert status.returncode == 1 and "stale" in status.stderr
    url = start("--model", minilm_ref)
    assert hanzo_json("node:status", "--json")["url"] == url
    assert run_hanzo("node:logs").returncode == 0
    assert (Path(os.environ["HANZO_HOME"]) / "logs" / "node.log.1").exists()  # the killed node's log is kept


def test_api_key_on_another_loopback_address(minilm_ref: str) -> None:
    """127.0.0.2 is loopback on Linux: the key is checked because one is set, on every route but health."""
    url = start("--model", minilm_ref, "--ip", "127.0.0.2", env={"HANZO_NODE_API_KEY": "k3y"})
    assert url.startswith("http://127.0.0.2:")
    body = {"model": "minilm", "input": "x"}
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic k3y"},
        {"Authorization": "k3y"},
    ):
        for method, path in (
            ("POST", "/api/embed"),
            ("POST", "/v1/embeddings"),
            ("GET", "/api/tags"),
            ("GET", "/"),
        ):
            response = httpx.request(method, url + path, json=body, headers=headers)
            assert response.status_code == 401, (headers, path)
            error = response.json()["error"]  # OpenAI's error object on /v1 routes
            assert "API key" in (error["message"] if path.startswith("/v1/") else error)
            assert response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(url + "/v2/health_check").json()["ready"] is True
    ok = httpx.post(url + "/v1/embeddings", json=body, headers={"Authorization": "Bearer k3y"})
    assert ok.status_code == 200
    client = ollama.Client(host=url, headers={"Authorization": "Bearer k3y"})
    assert len(client.embed(model="minilm", input="x").embeddings[0]) == 384
    with pytest.raises(ollama.ResponseError) as denied:
        ollama.Client(host=url).embed(model="minilm", input="x")
    assert denied.value.status_code == 401
    pid = hanzo_json("node:status", "--json")["pid"]
    assert "k3y" not in Path(f"/proc/{pid}/cmdline").read_text()  # passed by environment, not argv


def test_foreground_stops_cleanly_on_ctrl_c(minilm_ref: str) -> None:
    port = free_port()
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hanzo_cli",
            "node:start",
            "--model",
            minilm_ref,
            "--port",
            str(port),
            "--foreground",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", None, timeout=120)
        status = hanzo_json("node:status", "--json")
        assert status["foreground"] is True and status["log"] is None
        assert_one_line_error(run_hanzo("node:logs"), "foreground")
        node_pid = status["pid"]
        cli.send_signal(signal.SIGINT)
        _, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 0, err
    assert "Shutting down" in err and "Finished server process" in err and "hanzo node stopped" in err
    assert "Traceback" not in err
    assert not alive(node_pid)
    assert run_hanzo("node:status").returncode == 1


def test_foreground_sigterm(minilm_ref: str) -> None:
    port = free_port()
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hanzo_cli",
            "node:start",
            "--model",
            minilm_ref,
            "--port",
            str(port),
            "--foreground",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", None, timeout=120)
        node_pid = hanzo_json("node:status", "--json")["pid"]
        cli.terminate()
        _, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 0, err
    assert not alive(node_pid)


def test_reranker_node(tiny_qwen3_reranker_gguf: Path) -> None:
    assert run_hanzo("model:import", str(tiny_qwen3_reranker_gguf), "--name", "reranker").returncode == 0
    url = start("--model", "reranker")
    documents = ["the cat is on the mat", "hello world", "abc"]
    body = {"model": "reranker", "query": "the cat", "documents": documents}
    response = httpx.post(url + "/v1/rerank", json=body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert sorted(r["index"] for r in results) == [0, 1, 2]
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    assert "document" not in results[0]

    top = httpx.post(url + "/v1/rerank", json={**body, "top_n": 1, "return_documents": True}).json()[
        "results"
    ]
    assert top == [{**results[0], "document": {"text": documents[results[0]["index"]]}}]
    cohere = httpx.post(url + "/v1/rerank", json={**body, "documents": [{"text": d} for d in documents]})
    assert cohere.json()["results"] == results
    assert httpx.post(url + "/v1/rerank", json={**body, "top_n": 0}).status_code == 400
    embed = httpx.post(url + "/api/embed", json={"input": "x"})
    assert embed.status_code == 400 and "reranker" in embed.json()["error"]


def test_hanzod_embeds_through_a_builtin_node(
    minilm_ref: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --embed-url and no Ollama: hanzo starts a built-in node on a free loopback port for hanzod."""
    monkeypatch.setenv("HANZOD_BIN", str(write_standin(tmp_path)))
    monkeypatch.setenv("NODE_API_PORT", str(free_port()))
    monkeypatch.setenv("STANDIN_RECORD", str(tmp_path / "env.json"))
    start("--model", minilm_ref, "--api-key", "k3y")
    env = recorded(tmp_path / "env.json")["env"]
    assert isinstance(env, dict)
    embed_url = env["EMBEDDINGS_SERVER_URL"]
    assert embed_url.startswith("http://127.0.0.1:") and env["DEFAULT_EMBEDDING_MODEL"] == "minilm"
    assert env["EMBEDDINGS_SERVER_API_KEY"] == env["API_V2_KEY"] == "k3y"
    response = httpx.post(
        embed_url + "/api/embed",
        json={"model": "minilm", "input": "x"},
        headers={"Authorization": "Bearer k3y"},
    )
    assert response.status_code == 200 and len(response.json()["embeddings"][0]) == 384

    status = hanzo_json("node:status", "--json")
    assert status["kind"] == "hanzod" and status["healthy"] is True
    assert status["embed_node"]["url"] == embed_url and status["embed_node"]["health"]["ready"] is True
    helper = status["embed_node"]["pid"]

    os.kill(status["pid"], signal.SIGKILL)  # hanzod dies: its helper must not be left behind
    deadline = time.monotonic() + 20
    while run_hanzo("node:status").returncode != 1:
        assert time.monotonic() < deadline
    assert not alive(helper)

    start("--model", minilm_ref)
    status = hanzo_json("node:status", "--json")
    helper = status["embed_node"]["pid"]
    assert run_hanzo("node:stop").returncode == 0
    assert not alive(helper) and (tmp_path / "env.json.stopped").exists()
