"""hanzo-llamacpp: the llama.cpp runtime (llama-cpp-python) for hanzo-cli.

Embeds with the pooling a GGUF declares (mean, CLS or last token) and reranks with llama.cpp's
``rank`` pooling, in-process. This module only registers the runtime; llama_cpp is imported when a
model loads.
"""

from __future__ import annotations

from collections.abc import Callable

from hanzo_cli.api import Runtime, hookimpl


@hookimpl
def register_runtimes(register: Callable[[Runtime], None]) -> None:
    from hanzo_llamacpp.runtime import LlamaCppRuntime

    register(LlamaCppRuntime())
