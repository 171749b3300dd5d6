"""Quality scores: retrieval (recall@1, MRR@10) for embedders and rerankers, and the mean cosine
between the vectors of two versions (quantisations) of one model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from hanzo_cli.bench.texts import Pair

if TYPE_CHECKING:
    import numpy as np

#: Passages a reranker scores per query: its own and the next ones (its topic's first).
RERANK_CANDIDATES = 10
MRR_CUTOFF = 10


def passages_and_gold(pairs: Sequence[Pair]) -> tuple[list[str], list[int]]:
    """The distinct passages, and for each pair the index of its passage among them."""
    index: dict[str, int] = {}
    gold = [index.setdefault(p.passage, len(index)) for p in pairs]
    return list(index), gold


def ranks(scores: np.ndarray, gold: Sequence[int]) -> list[int]:
    """1-based rank of each query's gold passage in its row of ``scores`` (ties count against it)."""
    import numpy as np

    return [int(np.sum(row >= row[g])) for row, g in zip(scores, gold, strict=True)]


def retrieval_metrics(rank_list: Sequence[int]) -> dict[str, float]:
    """recall@1 and MRR@10 from the ranks of the gold passages."""
    n = len(rank_list)
    return {
        "recall_at_1": sum(r == 1 for r in rank_list) / n,
        "mrr_at_10": sum(1 / r for r in rank_list if r <= MRR_CUTOFF) / n,
    }


def embedding_ranks(queries: np.ndarray, passages: np.ndarray, gold: Sequence[int]) -> list[int]:
    """Ranks of the gold passages when each query (a unit vector) ranks every passage by cosine."""
    return ranks(queries @ passages.T, gold)


def rerank_candidates(pairs: Sequence[Pair], passages: Sequence[str]) -> list[list[int]]:
    """For each pair, :data:`RERANK_CANDIDATES` passage indices: its own first, then the other
    passages of its topic, then the following ones (deterministic, so runs compare)."""
    index = {p: i for i, p in enumerate(passages)}
    by_topic: dict[str, list[int]] = {}
    for pair in pairs:
        members = by_topic.setdefault(pair.topic, [])
        if index[pair.passage] not in members:
            members.append(index[pair.passage])
    count = min(RERANK_CANDIDATES, len(passages))
    out = []
    for pair in pairs:
        own = index[pair.passage]
        chosen = [own]
        ring = [(own + k) % len(passages) for k in range(1, len(passages))]
        for i in [*by_topic[pair.topic], *ring] if pair.topic else ring:
            if len(chosen) == count:
                break
            if i not in chosen:
                chosen.append(i)
        out.append(chosen)
    return out


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine similarity of corresponding rows of two matrices of the same shape."""
    import numpy as np

    if a.shape != b.shape:
        raise ValueError(f"vectors of different shapes: {a.shape} and {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(np.sum(a * b, axis=1) / np.where(norms == 0, 1, norms)))
