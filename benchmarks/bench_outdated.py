"""``model:outdated`` on many models from one registry: requests per model, and wall time against
the bound the issue sets (1.5 x one check's round trip x models / parallelism); then an update of
models that did not change, and a pull into another store of a model already verified in hanzo's,
counting the blob bytes the registry served (the goal: none, twice).

    .venv/bin/python benchmarks/bench_outdated.py [--models 50] [--runs 3]

A real CNCF registry (``docker-registry``) with its access log on serves the models; requests and
bytes are counted from that log, not from hanzo's own word. Between hanzo and the registry sits a
small proxy that adds ``--latency-ms`` to every request, as a registry across a network would (on
bare loopback a check is a millisecond of CPU, and threads on two shared cores cannot beat that).
"One check's round trip" is the median of sequential single-model checks in the same run, so the
ratio compares like with like on this machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lifecycle.conftest import served, start_logged_registry  # noqa: E402 - after the sys.path fix


class _DelayProxy:
    """Forward every request to ``upstream`` after ``latency`` seconds (threaded, keep-alive)."""

    def __init__(self, upstream: str, latency: float) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import httpx

        client = httpx.Client(base_url=upstream, timeout=30)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                time.sleep(latency)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                reply = client.request(self.command, self.path, headers=headers, content=body)
                self.send_response(reply.status_code)
                for key, value in reply.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.content)

            do_GET = do_HEAD = do_PUT = do_POST = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-outdated-"))
    os.environ.update(
        HANZO_HOME=str(work / "hanzo"),
        HF_HOME=str(work / "hf"),
        OLLAMA_HOST="http://127.0.0.1:9",  # no Ollama server: native checks
        HANZO_PLUGINS="ollama",
        HANZO_PROGRESS="0",
    )
    from hanzo_cli.providers import PullOptions
    from hanzo_cli.updates import MAX_PARALLEL_CHECKS, check, check_all, local_models, update_models

    registry = start_logged_registry(work / "registry")
    proxy = _DelayProxy(registry.url, args.latency_ms / 1000)
    try:
        options = PullOptions(insecure=True, quiet=True)
        from hanzo_cli import models

        for i in range(args.models):
            registry.push_ollama_model(
                f"bench/m{i}", "latest", [("model", os.urandom(4096)), ("params", f'{{"n": {i}}}'.encode())]
            )
            models.pull(f"ollama:{proxy.host}/bench/m{i}", options=options)
        pairs = local_models([])
        assert len(pairs) == args.models, len(pairs)

        singles = []
        for provider, model in pairs[: min(10, len(pairs))]:
            t0 = time.perf_counter()
            assert check(provider, model, options).status == "up-to-date"
            singles.append(time.perf_counter() - t0)
        round_trip = statistics.median(singles)
        parallel = min(MAX_PARALLEL_CHECKS, len(pairs))
        bound = 1.5 * round_trip * len(pairs) / parallel

        walls, per_model = [], []
        for _ in range(args.runs):
            before = len(served(registry))
            t0 = time.perf_counter()
            checks = check_all(pairs, options)
            walls.append(time.perf_counter() - t0)
            requests = served(registry)[before:]
            assert all(c.status == "up-to-date" for c in checks), [c.reason for c in checks]
            per_model.append(len(requests) / len(pairs))
        wall = statistics.median(walls)

        before = len(served(registry))
        results = update_models(check_all(pairs, options), options, dry_run=False)
        blob_bytes = sum(r.bytes for r in served(registry)[before:] if "/blobs/" in r.path)
        assert all(r.action == "skipped" for r in results)

        # The same model into another store ($OLLAMA_MODELS): its blobs are verified in hanzo's
        # store already, so they are linked, not downloaded.
        os.environ["OLLAMA_MODELS"] = str(work / "ollama-models")
        before = len(served(registry))
        models.pull(f"ollama:{proxy.host}/bench/m0", options=options)
        linked_bytes = sum(r.bytes for r in served(registry)[before:] if "/blobs/" in r.path)
        del os.environ["OLLAMA_MODELS"]
    finally:
        proxy.server.shutdown()
        registry.stop()

    print(f"models: {len(pairs)}, parallelism: {parallel}, added latency: {args.latency_ms:.0f} ms")
    print(f"requests per model: {max(per_model):.2f} (goal <= 1)")
    print(f"one check's round trip (median of {len(singles)} sequential): {round_trip * 1000:.1f} ms")
    sequential = round_trip * len(pairs)
    print(
        f"model:outdated wall (median of {args.runs}): {wall * 1000:.1f} ms "
        f"(sequential ~{sequential * 1000:.0f} ms)"
    )
    print(f"wall / (1.5 x round trip x models / parallelism): {wall / bound:.2f} (goal <= 1.0)")
    print(f"model:update of unchanged models: {blob_bytes} blob bytes served (goal 0)")
    print(f"pull of a model verified in another store: {linked_bytes} blob bytes served (goal 0)")


if __name__ == "__main__":
    main()
