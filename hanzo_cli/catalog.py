"""The model catalog: short aliases (``qwen3-embedding-8b``) mapped to each provider's own name."""

from __future__ import annotations

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

    def tier(self, task: str, tier: str, provider: str | None = None) -> list[CatalogEntry]:
        return [
            e
            for e in self.entries
            if e.task == task and e.tier == tier and (provider is None or e.provider == provider)
        ]

    def aliases(self) -> list[str]:
        return sorted({e.alias for e in self.entries})
