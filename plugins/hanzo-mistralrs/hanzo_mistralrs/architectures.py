"""What mistral.rs embeds: config.json ``model_type`` -> its ``EmbeddingArchitecture`` member.

mistralrs 0.9.5 has two embedding architectures (``EmbeddingArchitecture.Qwen3Embedding`` for
``Qwen3ForCausalLM`` folders, ``EmbeddingGemma`` for ``Gemma3TextModel`` ones).
"""

from __future__ import annotations

EMBEDDING_ARCHITECTURES: dict[str, str] = {
    "qwen3": "Qwen3Embedding",
    "gemma3_text": "EmbeddingGemma",
}
