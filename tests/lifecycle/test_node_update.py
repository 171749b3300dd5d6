"""node:start --update: the node's models are checked first and changes pulled (printed); a failed
check starts the node with what is on disk and says so. The real built-in node (llama.cpp, MiniLM)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hanzo_cli.builtin.node.state import free_port
from tests.fixtures.registry import Registry
from tests.helpers import hanzo_json, run_hanzo
from tests.lifecycle.test_ollama_updates import TEMPLATE_V1, TEMPLATE_V2


@pytest.fixture(autouse=True)
def node_runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if not (importlib.util.find_spec("llama_cpp") and importlib.util.find_spec("hanzo_llamacpp")):
        pytest.skip("needs llama-cpp-python and hanzo-llamacpp")
    monkeypatch.setenv("HANZO_PLUGINS", "ollama,llamacpp")
    yield
    from hanzo_cli.builtin.node import state

    state.stop(timeout=5)


def push(registry: Registry, gguf: Path, template: bytes) -> str:
    registry.push_ollama_model("ns/minilm", "f16", [("model", gguf.read_bytes()), ("template", template)])
    return str(registry.get_manifest("ns/minilm", "f16").headers["Docker-Content-Digest"])


def start(*args: str) -> tuple[str, str]:
    proc = run_hanzo("node:start", "--port", str(free_port()), "--timeout", "120", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip(), proc.stderr


def test_start_with_update_pulls_what_changed_first(registry: Registry, minilm_gguf: Path) -> None:
    push(registry, minilm_gguf, TEMPLATE_V1)
    name = f"{registry.host}/ns/minilm:f16"
    hanzo_json("model:pull", "--insecure", f"ollama:{name}", "--json")
    v2 = push(registry, minilm_gguf, TEMPLATE_V2)

    url, stderr = start("--model", f"ollama:{name}", "--update", "--insecure")
    assert f"ollama:{name}: updated" in stderr
    assert hanzo_json("model:list", "--json")[0]["digest"] == v2
    vectors = httpx.post(url + "/api/embed", json={"model": name, "input": ["a"]}, timeout=60).json()
    assert len(vectors["embeddings"][0]) == 384
    assert run_hanzo("node:stop").returncode == 0

    # The registry is gone: the check fails, the node starts anyway with the model on disk, and says so.
    registry.stop()
    proc = run_hanzo("config:set", "node.update", "true")
    assert proc.returncode == 0, proc.stderr
    url, stderr = start("--model", f"ollama:{name}", "--insecure")
    assert "could not check for updates" in stderr and "starting with what is on disk" in stderr
    assert httpx.get(url + "/api/tags", timeout=10).status_code == 200
