"""Runtime tests run real llama.cpp (llama-cpp-python) and ctransformers on real GGUF files.

A runtime library that is not installed skips its tests, unless ``REQUIRE_RUNTIMES=1`` (set in CI,
which installs both) turns the skip into a failure. Only hanzo's own runtime plugins are loaded
(``HANZO_PLUGINS``), so other plugins' state cannot break these tests.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from hanzo_cli.builtin.local_provider import LocalProvider

RUNTIME_PLUGINS = "llamacpp,ctransformers"


def require(module: str) -> None:
    """Skip the test when ``module`` does not import (fail instead with ``REQUIRE_RUNTIMES=1``)."""
    if importlib.util.find_spec(module) is not None:
        return
    reason = f"{module} is not installed"
    if os.environ.get("REQUIRE_RUNTIMES", "") not in ("", "0", "false", "no"):
        pytest.fail(f"{reason} (REQUIRE_RUNTIMES is set)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def runtime_plugins_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANZO_PLUGINS", RUNTIME_PLUGINS)


@pytest.fixture
def llama_cpp() -> None:
    require("llama_cpp")
    require("hanzo_llamacpp")


@pytest.fixture
def ctransformers() -> None:
    require("ctransformers")
    require("hanzo_ctransformers")


@pytest.fixture
def import_model() -> Callable[[Path, str], str]:
    """``import_model(path, name)`` puts a GGUF in this test's store; returns ``local:NAME``."""

    def do_import(path: Path, name: str) -> str:
        LocalProvider().import_file(path, name)
        return f"local:{name}"

    return do_import


@pytest.fixture
def minilm(llama_cpp: None, minilm_gguf: Path, import_model: Callable[[Path, str], str]) -> str:
    return import_model(minilm_gguf, "minilm")


@pytest.fixture
def tiny_qwen3(llama_cpp: None, tiny_qwen3_gguf: Path, import_model: Callable[[Path, str], str]) -> str:
    return import_model(tiny_qwen3_gguf, "tiny-qwen3")


@pytest.fixture
def tiny_llama(tiny_llama_gguf: Path, import_model: Callable[[Path, str], str]) -> str:
    return import_model(tiny_llama_gguf, "tiny-llama")
