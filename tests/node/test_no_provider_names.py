"""The node names no provider: whether a provider's own server serves the model is the provider's
answer (``Provider.serving_url``), which reads the provider's own settings. Issue 10's reproduction:
with ``OLLAMA_HOST=https://ollama.example.com`` the node used ``http://…:11434``, the plugin ``https://…:443``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hanzo_cli.builtin.node import launch
from hanzo_cli.providers import ModelInfo

NODE = Path(launch.__file__).parent


def string_constants(path: Path) -> list[str]:
    """Every string literal in the module except docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and (body := node.body)
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


@pytest.mark.parametrize("path", sorted(NODE.glob("*.py")), ids=lambda p: p.name)
def test_node_code_names_no_provider(path: Path) -> None:
    """No literal that is a provider's name (``provider == "ollama"``) or one of its settings
    (``OLLAMA_HOST``). The node may say that it speaks Ollama's API: that is a protocol."""
    from hanzo_cli.plugins import registry

    names = {"ollama", "huggingface", "hf", "lmstudio", *registry().providers}
    settings = ("OLLAMA_", "HF_", "HUGGINGFACE_", "LMSTUDIO_")
    found = [
        s
        for s in string_constants(path)
        if s.strip().lower() in names or any(prefix in s for prefix in settings)
    ]
    assert not found, f"{path.name} names a provider: {found}"


def test_node_and_ollama_plugin_agree_on_ollama_host(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("hanzo_ollama")
    from hanzo_ollama import server as ollama_server

    from hanzo_cli import plugins

    monkeypatch.setenv("OLLAMA_HOST", "https://ollama.example.com")
    plugins.reset_for_tests()
    served = ModelInfo("ollama", "all-minilm:latest")
    asked: list[str] = []

    def probe(
        cls: type[ollama_server.OllamaServer], base_url: str | None = None, timeout: float = 0.5
    ) -> ollama_server.OllamaServer:
        # Loopback only in tests: answer as that server would, after recording where it was sought.
        server = cls(base_url or ollama_server.ollama_host())
        asked.append(server.base_url)
        return server

    monkeypatch.setattr(ollama_server.OllamaServer, "probe", classmethod(probe))
    monkeypatch.setattr(ollama_server.OllamaServer, "tags", lambda self: [served])

    assert launch.serving_url(served) == "https://ollama.example.com:443"
    assert asked == ["https://ollama.example.com:443"]
    # A model of another provider is not the Ollama server's to serve.
    assert launch.serving_url(ModelInfo("local", "minilm")) is None
