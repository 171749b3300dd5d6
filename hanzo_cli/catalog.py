"""The model catalog: short aliases (``qwen3-embedding-8b``) mapped to each provider's own name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogEntry:
    """One provider's name for an aliased model.

    ``task`` is ``embed``, ``rerank`` or ``generate``; ``tier`` groups the recommended models
    (``flagship``, ``balanced``, ``lightweight`` for embeddings; ``primary``, ``lightweight`` for
    rerankers) so ``hanzo embedding:pull TIER`` can find them.
    """

    alias: str
    provider: str
    name: str
    task: str = "embed"
    tier: str | None = None
    dimensions: int | None = None
    description: str = ""
    #: Model facts the core applies when it runs this model (or any model of ``family``):
    #: ``str.format`` pattern with ``{task}`` and ``{text}`` for embedding queries, and the task
    #: sentence it gets by default. Qwen3-Embedding: ``"Instruct: {task}\\nQuery:{text}"``.
    query_format: str | None = None
    query_task: str | None = None
    #: The model family (``Qwen3-Embedding``), matched against the GGUF's own name, so a file pulled
    #: under another name (``hf:Qwen/Qwen3-Embedding-0.6B-GGUF``) still gets the family's rules.
    family: str | None = None
    #: What ``name`` pulls: ``gguf`` (a GGUF file) or ``safetensors`` (the Hub's own model folder).
    #: The tiers of ``hanzo embedding:pull`` are GGUF unless ``--format safetensors`` is given.
    format: str = "gguf"


class Catalog:
    def __init__(self, entries: list[CatalogEntry] | None = None) -> None:
        self.entries: list[CatalogEntry] = list(entries or [])

    def add(self, entry: CatalogEntry) -> None:
        self.entries.append(entry)

    def lookup(self, alias: str, provider: str | None = None) -> list[CatalogEntry]:
        """Entries for ``alias`` (case-insensitive), restricted to ``provider`` when given."""
        key = alias.strip().lower()
        return [
            e for e in self.entries if e.alias.lower() == key and (provider is None or e.provider == provider)
        ]

    def tier(
        self, task: str, tier: str, provider: str | None = None, format: str = "gguf"
    ) -> list[CatalogEntry]:
        return [
            e
            for e in self.entries
            if e.task == task
            and e.tier == tier
            and e.format == format
            and (provider is None or e.provider == provider)
        ]

    def aliases(self) -> list[str]:
        return sorted({e.alias for e in self.entries})

    def rules_for(self, provider: str, name: str, labels: Sequence[str | None] = ()) -> CatalogEntry | None:
        """The entry whose model facts apply to a model: the same provider and name, else one whose
        ``family`` appears in one of the model's own ``labels`` (the GGUF's ``general.basename`` and
        ``general.name``, compared lower-case with spaces and underscores as dashes)."""
        key = name.strip().lower()
        with_rules = [e for e in self.entries if e.query_format]
        for entry in with_rules:
            if entry.provider == provider and entry.name.lower() == key:
                return entry
        spelled = [_dashed(label) for label in labels if label]
        for entry in with_rules:
            if entry.family and any(_dashed(entry.family) in label for label in spelled):
                return entry
        return None


def _dashed(text: str) -> str:
    return text.strip().lower().replace(" ", "-").replace("_", "-")
