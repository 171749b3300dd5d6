"""The node's embedding path: float32 vectors written in their shortest float32 form (as Ollama's Go encoder
writes float32), and the OpenMP spin its embedding workers get (``host.worker_environment``)."""

from __future__ import annotations

import re

import httpx
import numpy as np
import pytest

from hanzo_cli.builtin.node.constants import EMBED_OMP_SPIN
from hanzo_cli.builtin.node.host import worker_environment
from tests.node.conftest import ServedNode

TEXTS = ["A cat sits on the mat", "Stock markets fell sharply", "hello world"]
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def significant_digits(number: str) -> int:
    mantissa = number.lstrip("-").split("e")[0].split("E")[0].replace(".", "").lstrip("0")
    return len(mantissa)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/embed", {"model": "minilm", "input": TEXTS}),
        ("/v1/embeddings", {"model": "minilm", "input": TEXTS}),
        ("/api/embeddings", {"model": "minilm", "prompt": TEXTS[0]}),
    ],
)
def test_vectors_are_shortest_float32(served_minilm: ServedNode, path: str, body: dict[str, object]) -> None:
    response = httpx.post(served_minilm.url + path, json=body, timeout=60)
    assert response.status_code == 200, response.text
    start = response.text.index("[")  # the numbers of the vectors (and OpenAI's indexes)
    numbers = [n for n in NUMBER.findall(response.text[start:]) if "." in n or "e" in n.lower()]
    assert len(numbers) >= 384
    # float32 needs at most 9 significant digits; float64 digits of a float32 value have up to 17.
    assert max(significant_digits(n) for n in numbers) <= 9
    # Each is the shortest decimal of its float32 value (not merely rounded to 9 digits).
    assert all(float(str(np.float32(float(n)))) == float(n) for n in numbers)


def test_worker_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HANZO_PROBE", "kept")
    embed = worker_environment("embed")
    assert embed["GOMP_SPINCOUNT"] == str(EMBED_OMP_SPIN) and embed["HANZO_PROBE"] == "kept"
    assert "GOMP_SPINCOUNT" not in worker_environment("generate")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's own choice wins
    assert "GOMP_SPINCOUNT" not in worker_environment("embed")
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setenv("GOMP_SPINCOUNT", "50")
    assert worker_environment("embed")["GOMP_SPINCOUNT"] == "50"


def test_embedding_worker_runs_with_the_spin(served_minilm: ServedNode) -> None:
    """The real worker process got the variable (libgomp reads it when llama.cpp first runs)."""
    import os
    from pathlib import Path

    if not Path("/proc/self/environ").exists():
        pytest.skip("needs /proc (Linux)")
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        pytest.skip("the test's environment sets the OpenMP wait itself")
    node = served_minilm.process.pid
    workers = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[1]) == node and b"hanzo_cli.builtin.node.worker" in command:
                workers.append(entry)
    assert workers, "no worker process under the node"
    environ = workers[0].joinpath("environ").read_bytes().split(b"\0")
    assert f"GOMP_SPINCOUNT={EMBED_OMP_SPIN}".encode() in environ
