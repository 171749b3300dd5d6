"""The measurement pieces behind model:bench and benchmarks/: percentiles, rounds, scores."""

from __future__ import annotations

import numpy as np
import pytest

from hanzo_cli.bench.measure import measure_batches, percentile
from hanzo_cli.bench.quality import (
    embedding_ranks,
    mean_cosine,
    passages_and_gold,
    rerank_candidates,
    retrieval_metrics,
)
from hanzo_cli.bench.runner import check_batches
from hanzo_cli.bench.texts import Pair, builtin_pairs
from hanzo_cli.errors import UsageError


def test_percentile_interpolates_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 50) <= percentile(values, 95)


def test_measure_batches_cycles_through_the_items_and_excludes_the_warm_up() -> None:
    seen: list[list[str]] = []
    result = measure_batches(seen.append, ["a", "b", "c"], 2, 0.0, rounds=3, tokens={"a": 1, "b": 2, "c": 3})
    assert seen[0] == ["a", "b"] and seen[1] == ["c", "a"]  # the items in turn, wrapping around
    assert result["calls"] == len(seen) - 1 == 3  # one call per round (budget 0), warm-up not counted
    assert result["items_per_s_min"] <= result["items_per_s"] <= result["items_per_s_max"]
    assert result["tokens_per_s"] > result["items_per_s"]  # 2 tokens per text on average here


def test_metrics_of_known_rankings() -> None:
    assert retrieval_metrics([1, 1, 2, 20]) == {"recall_at_1": 0.5, "mrr_at_10": pytest.approx(2.5 / 4)}
    # identical vectors: every query finds its own passage first
    unit = np.eye(3, dtype=np.float32)
    assert embedding_ranks(unit, unit, [0, 1, 2]) == [1, 1, 1]
    # a tie counts against the gold passage
    assert embedding_ranks(unit[:1], np.ones((3, 3), dtype=np.float32), [0]) == [3]


def test_duplicate_passages_share_one_index() -> None:
    pairs = [Pair("q1", "p"), Pair("q2", "p"), Pair("q3", "r")]
    assert passages_and_gold(pairs) == (["p", "r"], [0, 0, 1])


def test_rerank_candidates_start_with_the_own_passage_then_its_topic() -> None:
    pairs = builtin_pairs()
    passages, gold = passages_and_gold(pairs)
    for pair, own, candidates in zip(pairs, gold, rerank_candidates(pairs, passages), strict=True):
        assert candidates[0] == own and len(set(candidates)) == len(candidates) == 10
        assert {pairs[gold.index(i)].topic for i in candidates} == {pair.topic}  # 10 per topic


def test_the_built_in_set_is_big_and_varied_enough() -> None:
    pairs = builtin_pairs()
    assert len(pairs) >= 100 and len({p.topic for p in pairs}) >= 12
    assert len({p.passage for p in pairs}) == len({p.query for p in pairs}) == len(pairs)


def test_mean_cosine() -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert mean_cosine(a, a) == pytest.approx(1.0)
    assert mean_cosine(a, np.array([[0.0, 1.0], [0.0, 1.0]])) == pytest.approx(0.5)


def test_batch_sizes() -> None:
    assert check_batches("32, 1,8,8") == [1, 8, 32]
    for bad in ("0", "", "1,,2", "-1", "two"):
        with pytest.raises(UsageError):
            check_batches(bad)


def test_gguf_header_tables_match_the_gguf_package() -> None:
    """hanzo reads headers without importing gguf; its copied tables must still agree with it."""
    gguf = pytest.importorskip("gguf")
    from hanzo_cli import gguf_info

    sizes = {int(t): size for t, size in gguf.GGML_QUANT_SIZES.items()}
    assert sizes == gguf_info._GGML_BLOCKS
    names = {int(f): f.name.removeprefix("MOSTLY_").removeprefix("ALL_") for f in gguf.LlamaFileType}
    assert names == gguf_info._FILE_TYPES
    assert gguf.GGUF_DEFAULT_ALIGNMENT == gguf_info._DEFAULT_ALIGNMENT
