"""hanzo-ctransformers: the ctransformers runtime for hanzo-cli.

ctransformers 0.2.27 (2023, unmaintained) bundles a llama.cpp from before most of today's GGUF
architectures existed: it runs ``llama``-architecture GGUFs (Llama, Mistral, …) only, and embeds
with the last token's hidden state. This module only registers the runtime; ctransformers is
imported when a model loads.
"""

from __future__ import annotations

from collections.abc import Callable

from hanzo_cli.api import Runtime, hookimpl


@hookimpl
def register_runtimes(register: Callable[[Runtime], None]) -> None:
    from hanzo_ctransformers.runtime import CTransformersRuntime

    register(CTransformersRuntime())
