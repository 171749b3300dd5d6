"""Several models in one built-in node (started with the real ``hanzo node:start``): models loaded at
start, others loaded on demand (the request waits for the load), ``--max-loaded`` eviction, Ollama's
``keep_alive`` semantics, ``/api/ps`` and ``hanzo node:ps``. Models: MiniLM and a tiny Qwen3 reranker."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo
from tests.node.test_lifecycle import start

DOCUMENTS = ["the cat is on the mat", "hello world"]


@pytest.fixture
def two_models(llama: None, minilm_ref: str, tiny_qwen3_reranker_gguf: Path) -> tuple[str, str]:
    assert run_hanzo("model:import", str(tiny_qwen3_reranker_gguf), "--name", "reranker").returncode == 0
    return minilm_ref, "reranker"


def loaded(url: str) -> dict[str, Any]:
    return {m["name"]: m for m in httpx.get(url + "/api/ps").json()["models"]}


def embed(url: str, model: str = "minilm", **extra: Any) -> httpx.Response:
    return httpx.post(url + "/api/embed", json={"model": model, "input": "a cat", **extra}, timeout=120)


def rerank(url: str, **extra: Any) -> httpx.Response:
    body = {"model": "reranker", "query": "the cat", "documents": DOCUMENTS, **extra}
    return httpx.post(url + "/v1/rerank", json=body, timeout=120)


def test_models_load_on_demand_and_the_least_recently_used_unloads(two_models: tuple[str, str]) -> None:
    url = start("--model", "minilm", "--max-loaded", "1")
    assert list(loaded(url)) == ["minilm"]
    assert loaded(url)["minilm"]["expires_at"] is None  # loaded at start: kept

    response = rerank(url)  # not loaded: the request waits for the load
    assert response.status_code == 200, response.text
    assert list(loaded(url)) == ["reranker"]  # --max-loaded 1: minilm made room
    assert loaded(url)["reranker"]["expires_at"] is not None  # loaded on demand: expires (5m)
    assert embed(url).status_code == 200
    assert list(loaded(url)) == ["minilm"]

    listed = hanzo_json("node:ps", "--json")["models"]
    assert [m["name"] for m in listed] == ["minilm"]
    table = run_hanzo("node:ps")
    assert table.returncode == 0 and "minilm" in table.stdout and "Forever" in table.stdout

    missing = embed(url, model="no-such-model")
    assert missing.status_code == 404 and "not found" in missing.json()["error"]


def test_keep_alive_follows_ollama(two_models: tuple[str, str]) -> None:
    url = start("--model", "minilm", "--keep-alive", "1")
    assert embed(url, keep_alive=0).status_code == 200
    assert loaded(url) == {}  # 0: unloaded right after the request, even a model loaded at start
    assert run_hanzo("node:status").returncode == 0  # still healthy: it loads again on demand

    assert rerank(url).status_code == 200  # on demand: --keep-alive 1 s
    deadline = time.monotonic() + 20
    while "reranker" in loaded(url):
        assert time.monotonic() < deadline, "the idle reranker was not unloaded after its keep-alive"
        time.sleep(0.2)

    assert rerank(url, keep_alive=-1).status_code == 200  # negative: forever
    time.sleep(2.5)
    assert loaded(url)["reranker"]["expires_at"] is None
    assert rerank(url, keep_alive="1h").json()["results"]
    assert loaded(url)["reranker"]["expires_at"] is not None
    bad = rerank(url, keep_alive="soon")
    assert bad.status_code == 400 and "keep_alive" in bad.json()["error"]["message"]


def test_two_models_loaded_at_start_serve_side_by_side(two_models: tuple[str, str]) -> None:
    url = start("--model", "minilm", "--model", "reranker")
    health = httpx.get(url + "/v2/health_check").json()
    assert health["ready"] is True and health["models"] == ["minilm", "reranker"]
    assert set(loaded(url)) == {"minilm", "reranker"}
    status = hanzo_json("node:status", "--json")
    assert status["models"] == ["minilm", "reranker"]

    def call(i: int) -> int:
        return (embed(url) if i % 2 else rerank(url)).status_code

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(call, range(12))) == [200] * 12


def test_a_bad_keep_alive_is_refused_before_anything_starts(two_models: tuple[str, str]) -> None:
    proc = run_hanzo("node:start", "--model", "minilm", "--keep-alive", "soon")
    assert_one_line_error(proc, "--keep-alive", code=2)
    assert run_hanzo("node:status").returncode == 1


def test_a_memory_budget_unloads_the_least_recently_used(two_models: tuple[str, str]) -> None:
    """MiniLM (46.22 MB) and the tiny reranker (0.13 MB) do not both fit in 46.3 MB: one unloads the other."""
    url = start("--model", "minilm", "--max-memory", "46300000")
    assert rerank(url).status_code == 200
    assert list(loaded(url)) == ["reranker"]
    assert embed(url).status_code == 200
    assert list(loaded(url)) == ["minilm"]
