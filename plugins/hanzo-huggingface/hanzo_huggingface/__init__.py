"""hanzo's Hugging Face provider: GGUF-aware, resumable, verified pulls into the standard HF cache.

Only cheap hook functions live here; huggingface_hub and the provider are imported when a command
first needs them, so ``hanzo --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hanzo_cli.api import hookimpl

if TYPE_CHECKING:
    from hanzo_cli.api import CatalogEntry, Provider


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    from hanzo_huggingface.provider import HuggingFaceProvider

    register(HuggingFaceProvider())


@hookimpl
def register_models(register: Callable[[CatalogEntry], None]) -> None:
    from hanzo_huggingface.catalog import ENTRIES

    for entry in ENTRIES:
        register(entry)
