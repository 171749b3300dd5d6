"""The plugin as a whole: registration, catalog, names, start-up cost, no downloader of its own."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import hanzo_ollama
import pytest
from hanzo_ollama.provider import OllamaProvider
from hanzo_ollama.registry import RegistryName

from hanzo_cli import models
from hanzo_cli.errors import HanzoError
from hanzo_cli.plugins import registry
from tests.helpers import run_hanzo


def test_provider_catalog_and_command_are_registered() -> None:
    reg = registry()
    provider = reg.provider("ollama")
    assert isinstance(provider, OllamaProvider)
    assert provider.priority == 10
    entries = {e.alias: e for e in reg.catalog.entries if e.provider == "ollama"}
    assert {a: (e.name, e.task, e.tier, e.dimensions) for a, e in entries.items()} == {
        "qwen3-embedding-8b": ("dengcao/Qwen3-Embedding-8B:Q5_K_M", "embed", "flagship", 4096),
        "qwen3-embedding-4b": ("dengcao/Qwen3-Embedding-4B:Q5_K_M", "embed", "balanced", 2560),
        "qwen3-embedding-0.6b": ("dengcao/Qwen3-Embedding-0.6B:Q8_0", "embed", "lightweight", 1024),
        "qwen3-reranker-4b": ("dengcao/Qwen3-Reranker-4B:F16", "rerank", "primary", None),
        "qwen3-reranker-0.6b": ("dengcao/Qwen3-Reranker-0.6B:F16", "rerank", "lightweight", None),
    }
    assert [e.alias for e in reg.catalog.tier("embed", "flagship", "ollama")] == ["qwen3-embedding-8b"]
    [(chosen, name)] = models.candidates("qwen3-embedding-0.6b", "ollama")
    assert chosen is provider and name == "dengcao/Qwen3-Embedding-0.6B:Q8_0"


def test_cli_offers_push_and_native() -> None:
    assert "model:push" in run_hanzo("--help").stdout
    assert "--native" in run_hanzo("model:pull", "--help").stdout


def test_start_up_imports_nothing_heavy() -> None:
    """Building the CLI, and listing models while no server runs, never import httpx or tqdm."""
    code = (
        "import sys; from hanzo_cli.cli import cli, main\n"
        "cli.list_commands(None)\n"
        "heavy = {'httpx', 'tqdm', 'hanzo_ollama.provider', 'hanzo_ollama.registry'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
        "from hanzo_cli.plugins import registry\n"
        "list(registry().provider('ollama').list())\n"
        "print(sorted({'httpx', 'tqdm'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "[]"]


def test_plugin_has_no_download_loop_or_progress_bar_of_its_own() -> None:
    source = "\n".join(p.read_text() for p in Path(hanzo_ollama.__file__).parent.glob("*.py"))
    assert not re.search(r"iter_bytes|iter_raw|tqdm|\.write\(", source)


@pytest.mark.parametrize(
    "name",
    [
        "dengcao/Qwen3-Embedding-8B:Q5_K_M",
        "llama3",
        "registry.ollama.ai/library/llama3:8b",
        "127.0.0.1:5000/team/qwen3-embed:q8",
        "http://127.0.0.1:5000/team/m",
        "hf.co/user/repo:Q4_K_M",
    ],
)
def test_accepts_ollama_names(name: str) -> None:
    assert OllamaProvider().accepts(name)


@pytest.mark.parametrize("name", ["a/b/c/d", "ns/.hidden", "../x", "m:bad/tag", "name@sha256:abc", ""])
def test_refuses_other_names(name: str) -> None:
    assert not OllamaProvider().accepts(name)


def test_names_compare_like_ollama() -> None:
    p = OllamaProvider()
    assert p.normalize("llama3") == p.normalize("registry.ollama.ai/library/LLAMA3:latest") == "llama3:latest"
    assert p.normalize("dengcao/Qwen3-Embedding-8B:Q5_K_M") == "dengcao/qwen3-embedding-8b:q5_k_m"


@pytest.mark.parametrize(
    ("name", "insecure", "manifest_url"),
    [
        (
            "dengcao/Qwen3-Embedding-8B:Q5_K_M",
            False,
            "https://registry.ollama.ai/v2/dengcao/Qwen3-Embedding-8B/manifests/Q5_K_M",
        ),
        ("llama3", False, "https://registry.ollama.ai/v2/library/llama3/manifests/latest"),
        (
            "127.0.0.1:5000/Team/Qwen3-Embed:Q8",
            True,
            "http://127.0.0.1:5000/v2/team/qwen3-embed/manifests/Q8",
        ),
        ("https://reg.example/Team/M:v1", False, "https://reg.example/v2/team/m/manifests/v1"),
        ("http://reg.example/ns/m:v1", True, "http://reg.example/v2/ns/m/manifests/v1"),
    ],
)
def test_registry_urls(name: str, insecure: bool, manifest_url: str) -> None:
    """Repositories are lower-cased for OCI registries (not for registry.ollama.ai); tags never."""
    target = RegistryName.parse(name, insecure=insecure)
    assert target.manifest_url() == manifest_url
    assert (
        target.blob_url("sha256:" + "a" * 64)
        == manifest_url.split("/manifests/")[0] + "/blobs/sha256:" + "a" * 64
    )


@pytest.mark.parametrize(
    ("name", "message"), [("http://h/ns/m", "--insecure"), ("ftp://h/ns/m", "unsupported scheme")]
)
def test_registry_scheme_rules(name: str, message: str) -> None:
    with pytest.raises(HanzoError, match=message):
        RegistryName.parse(name, insecure=False)
