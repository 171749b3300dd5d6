"""hanzo's Ollama provider: pull through a running Ollama server or natively from any Ollama/OCI
registry, list/show/delete models, push them to a registry (``model:push``), and compute
embeddings through a running Ollama.

Only cheap hook implementations live here; httpx and the provider code are imported inside them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hanzo_cli.api import hookimpl

if TYPE_CHECKING:
    import click

    from hanzo_cli.api import CatalogEntry, Provider

__all__ = ["CATALOG"]

#: The seed's recommended models on registry.ollama.ai: (alias, name, task, tier, dimensions).
#: Qwen3-Embedding-0.6B has no Q5_K_M tag on the registry; Q8_0 is the closest that exists.
CATALOG: tuple[tuple[str, str, str, str, int | None], ...] = (
    ("qwen3-embedding-8b", "dengcao/Qwen3-Embedding-8B:Q5_K_M", "embed", "flagship", 4096),
    ("qwen3-embedding-4b", "dengcao/Qwen3-Embedding-4B:Q5_K_M", "embed", "balanced", 2560),
    ("qwen3-embedding-0.6b", "dengcao/Qwen3-Embedding-0.6B:Q8_0", "embed", "lightweight", 1024),
    ("qwen3-reranker-4b", "dengcao/Qwen3-Reranker-4B:F16", "rerank", "primary", None),
    ("qwen3-reranker-0.6b", "dengcao/Qwen3-Reranker-0.6B:F16", "rerank", "lightweight", None),
)


#: Qwen3-Embedding's query instruction (see the model's README): queries get it, documents do not.
QWEN3_QUERY = {
    "query_format": "Instruct: {task}\nQuery:{text}",
    "query_task": "Given a web search query, retrieve relevant passages that answer the query",
    "family": "Qwen3-Embedding",
}


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    from hanzo_ollama.provider import OllamaProvider

    register(OllamaProvider())


@hookimpl
def register_commands(cli: click.Group) -> None:
    from hanzo_cli.api import register_setting
    from hanzo_ollama.commands import mirror_cmd, push_cmd

    cli.add_command(push_cmd)
    cli.add_command(mirror_cmd)
    register_setting(
        "registry.mirrors",
        "registry mirrors, tried before their upstream: upstream-host=mirror-url, comma-separated",
    )


@hookimpl
def register_models(register: Callable[[CatalogEntry], None]) -> None:
    from hanzo_cli.api import CatalogEntry

    for alias, name, task, tier, dimensions in CATALOG:
        rules = QWEN3_QUERY if task == "embed" else {}
        register(CatalogEntry(alias, "ollama", name, task=task, tier=tier, dimensions=dimensions, **rules))
