"""hanzo-mistralrs: the mistral.rs runtime (PyPI ``mistralrs``) for hanzo-cli.

Runs sentence-transformers embedding models as the Hub ships them — a folder with ``config.json``,
``tokenizer.json``, ``*.safetensors`` and ``modules.json`` — with no conversion to GGUF:
Qwen3-Embedding (``model_type`` ``qwen3``) and EmbeddingGemma (``gemma3_text``). This module only
registers the runtime; mistralrs is imported when a model loads.
"""

from __future__ import annotations

from collections.abc import Callable

from hanzo_cli.api import Runtime, hookimpl


@hookimpl
def register_runtimes(register: Callable[[Runtime], None]) -> None:
    from hanzo_mistralrs.runtime import MistralRsRuntime

    register(MistralRsRuntime())
