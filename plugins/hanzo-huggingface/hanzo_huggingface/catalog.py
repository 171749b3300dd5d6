"""The catalog entries of this provider: the same aliases and tiers as the Ollama plugin's.

Embeddings come from Qwen's official GGUF repos, at the quants the Ollama entries use. Qwen publishes
no reranker GGUFs, so the rerankers are community conversions made with llama.cpp's own converter
(which writes the ``rank`` pooling and classifier head llama.cpp needs):
``ggml-org/Qwen3-Reranker-0.6B-Q8_0-GGUF`` by ggml-org (llama.cpp's maintainers) and
``Voodisss/Qwen3-Reranker-4B-GGUF-llama_cpp`` (its default quant; see ``selection.QUANT_PREFERENCE``).

Each embedding tier also has its safetensors form, Qwen's own ``Qwen/Qwen3-Embedding-*`` repos (what a
user who copies a name from the Hub types), run by the mistral.rs runtime: aliases ``…-safetensors``,
chosen by ``hanzo embedding:pull --format safetensors``.
"""

from __future__ import annotations

from hanzo_cli.api import CatalogEntry

PROVIDER = "huggingface"

#: Qwen3-Embedding's query instruction and the retrieval task of its README: queries get it,
#: documents go in as they are. ``family`` applies it to any GGUF of the family, whatever its name.
QWEN3_EMBEDDING = {
    "query_format": "Instruct: {task}\nQuery:{text}",
    "query_task": "Given a web search query, retrieve relevant passages that answer the query",
    "family": "Qwen3-Embedding",
}

ENTRIES = (
    CatalogEntry(
        "qwen3-embedding-8b",
        PROVIDER,
        "Qwen/Qwen3-Embedding-8B-GGUF:Q5_K_M",
        tier="flagship",
        dimensions=4096,
        **QWEN3_EMBEDDING,
    ),
    CatalogEntry(
        "qwen3-embedding-4b",
        PROVIDER,
        "Qwen/Qwen3-Embedding-4B-GGUF:Q5_K_M",
        tier="balanced",
        dimensions=2560,
        **QWEN3_EMBEDDING,
    ),
    CatalogEntry(
        "qwen3-embedding-0.6b",
        PROVIDER,
        "Qwen/Qwen3-Embedding-0.6B-GGUF:Q8_0",
        tier="lightweight",
        dimensions=1024,
        **QWEN3_EMBEDDING,
    ),
    CatalogEntry(
        "qwen3-embedding-8b-safetensors",
        PROVIDER,
        "Qwen/Qwen3-Embedding-8B",
        tier="flagship",
        dimensions=4096,
        format="safetensors",
        **QWEN3_EMBEDDING,
    ),
    CatalogEntry(
        "qwen3-embedding-4b-safetensors",
        PROVIDER,
        "Qwen/Qwen3-Embedding-4B",
        tier="balanced",
        dimensions=2560,
        format="safetensors",
        **QWEN3_EMBEDDING,
    ),
    CatalogEntry(
        "qwen3-embedding-0.6b-safetensors",
        PROVIDER,
        "Qwen/Qwen3-Embedding-0.6B",
        tier="lightweight",
        dimensions=1024,
        format="safetensors",
        **QWEN3_EMBEDDING,
    ),
    CatalogEntry(
        "qwen3-reranker-4b",
        PROVIDER,
        "Voodisss/Qwen3-Reranker-4B-GGUF-llama_cpp",
        task="rerank",
        tier="primary",
    ),
    CatalogEntry(
        "qwen3-reranker-0.6b",
        PROVIDER,
        "ggml-org/Qwen3-Reranker-0.6B-Q8_0-GGUF:Q8_0",
        task="rerank",
        tier="lightweight",
    ),
)
