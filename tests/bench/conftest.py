"""Real models for the benchmark tests, imported into the test's hanzo store under short names."""

from __future__ import annotations

import ctypes
import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.models import MINILM_VERSION, build_cached


def _quantize_q8_0(source: Path, target: Path) -> None:
    """llama.cpp's own quantiser (llama_model_quantize), as llama-quantize runs it."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    params.nthread = 1
    rc = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    assert rc == 0, f"llama_model_quantize returned {rc}"


@pytest.fixture(scope="session")
def minilm_q8_gguf(minilm_gguf: Path) -> Path:
    """all-MiniLM-L6-v2 quantised from the F16 GGUF to Q8_0 by llama.cpp (cached)."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("quantising needs llama-cpp-python")
    return build_cached(
        f"all-MiniLM-L6-v2-q8_0-v{MINILM_VERSION}.gguf", lambda p: _quantize_q8_0(minilm_gguf, p)
    )


@pytest.fixture
def import_as() -> Callable[[Path, str], str]:
    """``import_as(gguf, name)``: the GGUF in the test's store (as model:import does); ``local:NAME``."""
    from hanzo_cli.builtin.local_provider import LocalProvider

    def do_import(path: Path, name: str) -> str:
        LocalProvider().import_file(path, name)
        return f"local:{name}"

    return do_import
