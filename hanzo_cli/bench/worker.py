"""One model x runtime, measured in a process of its own: ``python -m hanzo_cli.bench.worker SPEC OUT``.

SPEC is a JSON file (written by :mod:`hanzo_cli.bench.runner`); the result goes to OUT as JSON only
when the worker gets that far, so a runtime that kills the process (a C assertion, a segfault, the
OOM killer) leaves no OUT and its row is reported as crashed. Peak RSS is this process's own.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from hanzo_cli.bench.measure import load_average, measure_batches, measure_generation, peak_rss_mb
from hanzo_cli.bench.quality import (
    embedding_ranks,
    passages_and_gold,
    rerank_candidates,
    retrieval_metrics,
)
from hanzo_cli.bench.texts import Pair
from hanzo_cli.errors import HanzoError
from hanzo_cli.fsutil import atomic_write

#: Tokens each generation request asks for (greedy): enough to time decoding, few enough to be quick.
GENERATED_TOKENS = 32


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Load the model, time it, score it; the row's numbers (vectors go to ``vectors_out``)."""
    import numpy as np

    from hanzo_cli.embedding import load_embedding_model, load_reranker

    task, texts = spec["task"], spec["texts"]
    pairs = [Pair(*p) for p in spec["pairs"]]
    passages, gold = passages_and_gold(pairs)
    per_batch = spec["seconds"] / len(spec["batches"])
    started = time.perf_counter()
    if task == "generate":
        return _measure_generator(spec, started)
    if task == "embed":
        model: Any = load_embedding_model(spec["ref"], runtime=spec["runtime"], pull=False)
    else:
        model = load_reranker(spec["ref"], runtime=spec["runtime"], pull=False)
    load_s = time.perf_counter() - started
    try:
        row: dict[str, Any] = {
            "load_s": load_s,
            "runtime": model.runtime.name,  # the one chosen, when the row named none
            "runtime_version": model.runtime.version(),
        }
        if task == "embed":
            started = time.perf_counter()
            model.embed(texts[:1])
            row["first_ms"] = (time.perf_counter() - started) * 1000
            tokenize = getattr(model.embedder, "tokenize", None)  # optional: llamacpp has it
            tokens = {t: len(tokenize(t)) for t in set(texts)} if callable(tokenize) else None
            row["batches"] = [
                measure_batches(model.embed, texts, b, per_batch, rounds=spec["rounds"], tokens=tokens)
                for b in spec["batches"]
            ]
            row["dimensions"] = model.dimensions
            queries = np.asarray(model.embed([p.query for p in pairs], query=True), dtype=np.float32)
            vectors = np.asarray(model.embed(passages), dtype=np.float32)
            row["quality"] = retrieval_metrics(embedding_ranks(queries, vectors, gold))
            np.save(spec["vectors_out"], vectors)
        else:
            query = pairs[0].query
            started = time.perf_counter()
            model.rerank(query, texts[:1])
            row["first_ms"] = (time.perf_counter() - started) * 1000

            def score(documents: list[str]) -> object:
                return model.rerank(query, documents)

            row["batches"] = [
                measure_batches(score, texts, b, per_batch, rounds=spec["rounds"]) for b in spec["batches"]
            ]
            row["dimensions"] = None
            ranks = []
            for pair, candidates in zip(pairs, rerank_candidates(pairs, passages), strict=True):
                scores = model.rerank(pair.query, [passages[i] for i in candidates])
                ranks.append(sum(s >= scores[0] for s in scores))
            row["quality"] = retrieval_metrics(ranks)
    finally:
        model.close()
    row["peak_rss_mb"] = peak_rss_mb()
    row["load_average"] = load_average()
    return row


def _measure_generator(spec: dict[str, Any], started: float) -> dict[str, Any]:
    """A text-generation model: prompt tokens/s, generated tokens/s, time to the first token."""
    from hanzo_cli import models
    from hanzo_cli.embedding import select_runtime
    from hanzo_cli.gguf_info import read_gguf_info
    from hanzo_cli.runtimes import SamplingOptions

    info = models.find(spec["ref"])
    if info is None or info.path is None:
        raise HanzoError(f"model {spec['ref']!r} is not pulled")
    runtime = select_runtime(read_gguf_info(info.path).architecture, "generate", spec["runtime"])
    try:
        generator = runtime.load_generator(info.path)
    except HanzoError:
        raise
    except Exception as exc:  # noqa: BLE001 - a runtime's library error, as one line
        raise HanzoError(f"runtime {runtime.name} cannot load {info.ref}: {exc}") from None
    row: dict[str, Any] = {
        "load_s": time.perf_counter() - started,
        "runtime": runtime.name,
        "runtime_version": runtime.version(),
    }
    options = SamplingOptions(max_tokens=GENERATED_TOKENS, temperature=0.0)
    try:
        first = time.perf_counter()
        for _ in generator.generate(spec["texts"][0], SamplingOptions(max_tokens=1, temperature=0.0)):
            pass
        row["first_ms"] = (time.perf_counter() - first) * 1000

        def generate(prompt: str) -> Any:
            return generator.generate(prompt, options)

        row["batches"] = [measure_generation(generate, spec["texts"], spec["seconds"], rounds=spec["rounds"])]
    finally:
        generator.close()
    row.update(dimensions=None, quality=None, peak_rss_mb=peak_rss_mb(), load_average=load_average())
    return row


def main(argv: list[str]) -> int:
    spec_path, out_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    try:
        result = {"status": "ok", **measure(spec)}
    except HanzoError as exc:
        result = {"status": "failed", "error": exc.message}
    atomic_write(out_path, json.dumps(result).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
