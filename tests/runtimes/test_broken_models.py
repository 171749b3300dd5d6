"""Broken GGUFs get one ``Error:`` line naming the file and the problem, from ``embedding:test``,
``rerank`` and the node, before a native runtime sees them (hanzo_cli/gguf_check.py); where a runtime
still aborts the process, its fatal-error report names the model."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import gguf
import pytest

from hanzo_cli.builtin.node.state import free_port
from hanzo_cli.errors import ModelFileError
from hanzo_cli.gguf_check import check_gguf
from tests.fixtures.models import write_tiny_llama
from tests.helpers import assert_one_line_error, run_hanzo

RANK = {"llama.pooling_type": int(gguf.PoolingType.RANK)}


@pytest.fixture
def no_byte_tokens(tmp_path: Path) -> Path:
    return write_tiny_llama(tmp_path / "nobytes.gguf", byte_tokens=False)


def truncate(path: Path, keep: float = 0.7) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_the_preflight_names_each_problem(tmp_path: Path, no_byte_tokens: Path) -> None:
    check_gguf(write_tiny_llama(tmp_path / "good.gguf"))  # a sound file passes
    with pytest.raises(ModelFileError, match=r"nobytes\.gguf: its SPM \(llama\) vocabulary lacks 256 of"):
        check_gguf(no_byte_tokens)
    with pytest.raises(ModelFileError, match=r"truncated"):
        check_gguf(truncate(write_tiny_llama(tmp_path / "short.gguf")))
    scores = write_tiny_llama(tmp_path / "scores.gguf", extra_kv={"tokenizer.ggml.scores": [0.0] * 3})
    with pytest.raises(ModelFileError, match=r"tokens but 3 entries in tokenizer\.ggml\.scores"):
        check_gguf(scores)


def test_a_changed_file_is_checked_again(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "m.gguf")
    check_gguf(path)
    write_tiny_llama(path, byte_tokens=False)  # same name, new content
    with pytest.raises(ModelFileError, match="byte tokens"):
        check_gguf(path)


def test_embedding_test_and_rerank_refuse_them_in_one_line(
    llama_cpp: None, ctransformers: None, tmp_path: Path, import_model: Callable[[Path, str], str]
) -> None:
    nobytes = import_model(write_tiny_llama(tmp_path / "a.gguf", byte_tokens=False), "nobytes")
    for runtime in ("llamacpp", "ctransformers"):
        proc = run_hanzo("embedding:test", "héllo wörld 日本", "-m", nobytes, "--runtime", runtime)
        assert_one_line_error(proc, "local:nobytes:latest (", "lacks 256 of the 256 byte tokens")
    reranker = import_model(write_tiny_llama(tmp_path / "r.gguf", byte_tokens=False, extra_kv=RANK), "r")
    assert_one_line_error(
        run_hanzo("rerank", "q", "a doc", "-m", reranker), "local:r:latest (", "byte tokens"
    )


def test_a_model_truncated_after_its_import_is_refused_in_one_line(
    llama_cpp: None, tmp_path: Path, import_model: Callable[[Path, str], str]
) -> None:
    good = import_model(write_tiny_llama(tmp_path / "t.gguf"), "t")
    blob = Path(json.loads(run_hanzo("model:show", good, "--json").stdout)["path"])
    truncate(blob)
    assert_one_line_error(run_hanzo("embedding:test", "hello", "-m", good), "truncated")
    reranker = import_model(write_tiny_llama(tmp_path / "tr.gguf", extra_kv=RANK), "tr")
    blob = Path(json.loads(run_hanzo("model:show", reranker, "--json").stdout)["path"])
    truncate(blob)
    assert_one_line_error(run_hanzo("rerank", "q", "a doc", "-m", reranker), "truncated")


def test_the_node_refuses_them_in_one_line(
    llama_cpp: None, tmp_path: Path, import_model: Callable[[Path, str], str]
) -> None:
    import_model(write_tiny_llama(tmp_path / "n.gguf", byte_tokens=False), "nobytes")
    proc = run_hanzo("node:start", "--model", "nobytes", "--port", str(free_port()), "--timeout", "60")
    assert_one_line_error(proc, "exited during start-up", "local:nobytes:latest", "byte tokens")


def test_a_native_abort_names_the_model(tmp_path: Path) -> None:
    """What faulthandler prints when a runtime aborts the process inside a call hanzo made for a model."""
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from hanzo_cli.embedding import NativeCall\n"
        "from hanzo_cli.providers import ModelInfo\n"
        "class R: name = 'llamacpp'\n"
        "info = ModelInfo(provider='local', name='crashy:latest', path=Path('/models/crashy.gguf'))\n"
        "NativeCall.run(NativeCall(info, R()), os.abort)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert (
        "runtime 'llamacpp' crashed the process while running local:crashy:latest (/models/crashy.gguf)"
        in proc.stderr
    )
