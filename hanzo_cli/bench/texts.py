"""Benchmark inputs: texts to embed and query/passage pairs to score.

``--texts FILE``: one text per line (blank lines skipped). ``--eval FILE.jsonl``: one JSON object per
line with string fields ``query`` and ``passage`` (``topic`` optional). Bad files raise
:class:`~hanzo_cli.errors.UsageError` naming the file and line.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from hanzo_cli.errors import UsageError

BUILTIN_SET = "built-in"
_DATA = Path(__file__).with_name("data") / "retrieval.jsonl"


@dataclass(frozen=True)
class Pair:
    """A search query and the passage that answers it."""

    query: str
    passage: str
    topic: str = ""


def builtin_pairs() -> list[Pair]:
    """The retrieval set written for hanzo (130 pairs over 13 topics; see data/README.md)."""
    return read_pairs(_DATA)


def read_pairs(path: Path) -> list[Pair]:
    """Pairs from a JSONL file; every line must be an object with string ``query`` and ``passage``."""
    pairs: list[Pair] = []
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}: line {number} is not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise UsageError(f"{path}: line {number} is not a JSON object")
        query, passage, topic = row.get("query"), row.get("passage"), row.get("topic", "")
        if not isinstance(query, str) or not query.strip():
            raise UsageError(f'{path}: line {number} has no "query" string')
        if not isinstance(passage, str) or not passage.strip():
            raise UsageError(f'{path}: line {number} has no "passage" string')
        pairs.append(Pair(query, passage, topic if isinstance(topic, str) else str(topic)))
    if len(pairs) < 2:
        raise UsageError(f"{path}: needs at least 2 query/passage pairs, found {len(pairs)}")
    return pairs


def read_texts(path: Path) -> list[str]:
    """One text per line, blank lines skipped; at least one text."""
    texts = [line.strip() for line in _lines(path) if line.strip()]
    if not texts:
        raise UsageError(f"{path}: no texts (one text per line)")
    return texts


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def sentences(n: int = 256) -> list[str]:
    """``n`` distinct short sentences of 5 to 14 words (deterministic), for throughput runs."""
    subjects = ["A cat", "The old man", "Our team", "A small child", "The government", "My neighbour"]
    subjects += ["A robot", "The orchestra"]
    verbs = ["quietly watched", "carefully repaired", "suddenly announced", "slowly explored"]
    verbs += ["happily shared", "never understood", "eagerly described", "barely noticed"]
    objects = [
        "the broken bicycle near the station",
        "a new plan for the city",
        "the stock market",
        "an ancient map of the northern islands",
        "the rain",
        "a recipe for apple pie",
        "the results of the election",
        "the mountains at dawn",
    ]
    combos = itertools.product(subjects, verbs, objects)
    return [f"{s} {v} {o}." for s, v, o in itertools.islice(combos, n)]
