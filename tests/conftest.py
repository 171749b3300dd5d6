"""Test isolation shared by every test: hanzo, Ollama, Hugging Face and LM Studio state all live
in a per-test temp dir, and nothing but loopback is ever contacted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Resolve the build cache for test models/venvs before HOME is redirected below.
os.environ.setdefault("HANZO_TEST_CACHE", str(Path("~/.cache/hanzo-cli-tests").expanduser()))

pytest_plugins = [
    "tests.fixtures.fileserver",
    "tests.fixtures.models",
    "tests.fixtures.registry",
    "tests.fixtures.olah",
]

_CLEARED = (
    "HANZO_PLUGINS",
    "HANZO_PROGRESS",
    "HANZO_DEBUG",
    "HANZO_EMBEDDING_MODEL",
    "HANZO_RERANKER_MODEL",
    "HANZO_PROVIDER_DEFAULT",
    "HANZO_RUNTIME_DEFAULT",
    "HANZO_NODE_API_KEY",
    "HANZOD_BIN",
    "OLLAMA_MODELS",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_ENDPOINT",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "LMSTUDIO_MODELS_DIR",
    "XDG_CACHE_HOME",
    "XDG_DATA_HOME",
    "XDG_CONFIG_HOME",
    "XDG_STATE_HOME",
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME, HANZO_HOME and HF_HOME under tmp_path; Ollama/LM Studio servers on a closed port."""
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HANZO_HOME", str(tmp_path / "hanzo"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    # Port 9 (discard) is closed on loopback: "is a server running?" probes fail at once.
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    monkeypatch.setenv("LMSTUDIO_HOST", "http://127.0.0.1:9")
    monkeypatch.setenv("HANZO_DOWNLOAD_BACKOFF", "0.01")
    from hanzo_cli import plugins

    plugins.reset_for_tests()
    return tmp_path
