"""What mistral.rs runs: config.json ``model_type`` -> its ``EmbeddingArchitecture`` member, and the
GGUF ``general.architecture`` values its GGUF loader builds text models for.

mistralrs 0.9.5 has two embedding architectures (``EmbeddingArchitecture.Qwen3Embedding`` for
``Qwen3ForCausalLM`` folders, ``EmbeddingGemma`` for ``Gemma3TextModel`` ones).
"""

from __future__ import annotations

EMBEDDING_ARCHITECTURES: dict[str, str] = {
    "qwen3": "Qwen3Embedding",
    "gemma3_text": "EmbeddingGemma",
}

#: The text families of mistral.rs's GGUF loader (mistralrs-core ``gguf/normal_registry.rs``, the
#: "GGUF compatibility" page of its docs), multimodal-only ones left out.
GENERATION_ARCHITECTURES: frozenset[str] = frozenset(
    {
        "deepseek2",
        "gemma",
        "gemma2",
        "gemma3",
        "glm4",
        "glm4moe",
        "gpt-oss",
        "granite",
        "granitehybrid",
        "granitemoe",
        "hunyuan-dense",
        "hunyuan-moe",
        "lfm2",
        "lfm2moe",
        "llama",
        "mistral3",
        "phi2",
        "phi3",
        "phimoe",
        "qwen2",
        "qwen3",
        "qwen35",
        "qwen35moe",
        "qwen3moe",
        "qwen3next",
        "smollm3",
        "starcoder2",
    }
)
