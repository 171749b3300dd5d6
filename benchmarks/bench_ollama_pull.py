"""A native Ollama pull from a real registry against curl fetching the same blob, on loopback.

    .venv/bin/python benchmarks/bench_ollama_pull.py [--size-mib 512] [--runs 3]

Starts a real CNCF distribution registry (Debian's ``docker-registry``, as in the tests), makes
an Ollama model whose model layer is SIZE MiB of random data, pushes it with ``hanzo model:push``
(timed too), then pulls it in interleaved runs, each into an empty store:

* ``hanzo``: ``hanzo model:pull --native --insecure`` end to end (a new process: start-up,
  manifest, the blob through the core downloader with its sha256 verified, the manifest written);
* ``curl``: ``curl -o`` of the model blob's URL (bytes only, nothing verified);
* ``curl+sha256sum``: the same, then ``sha256sum`` of the file;
* ``curl|tee|openssl``: ``curl | tee FILE | openssl dgst -sha256``, the same work as a verified pull
  done by plain tools at once (issue 16's "fast link" peer).

The page cache is flushed (sync) before each run. Printed: median seconds, MiB/s, ratio to curl,
hanzo's peak RSS (from wait4), and issue 16's goals: curl|tee|openssl time / hanzo time >= 1.3,
curl time / hanzo time >= 0.6, peak RSS <= 80 MiB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hanzo_cli.store import CONFIG_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, MODEL_MEDIA_TYPE, Store  # noqa: E402
from tests.fixtures.registry import start_registry  # noqa: E402 - after the sys.path fix

MiB = 1024 * 1024


def make_model(store: Store, name: str, size: int) -> str:
    """Write a model of ``size`` random bytes into ``store`` without holding it in memory."""
    store.blobs_dir.mkdir(parents=True, exist_ok=True)
    tmp = store.blobs_dir / "incoming"
    sha = hashlib.sha256()
    with open(tmp, "wb") as f:
        for _ in range(0, size, 4 * MiB):
            chunk = os.urandom(min(4 * MiB, size - f.tell()))
            sha.update(chunk)
            f.write(chunk)
    digest = "sha256:" + sha.hexdigest()
    tmp.rename(store.blob_path(digest))
    config_digest, config_size = store.add_blob_bytes(json.dumps({"model_format": "gguf"}).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": MODEL_MEDIA_TYPE, "digest": digest, "size": size}],
    }
    from hanzo_cli.store import ManifestName

    store.write_manifest(ManifestName.parse(name, host="local"), json.dumps(manifest).encode())
    return digest


PEAK_RSS: list[int] = []  # bytes, one per hanzo run


def hanzo(*args: str, env: dict[str, str]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "hanzo_cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    stderr = process.stderr.read()
    _pid, status, usage = os.wait4(process.pid, 0)  # this child's own peak RSS (KiB on Linux)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"hanzo {' '.join(args)} failed: {stderr.decode(errors='replace')}")
    PEAK_RSS.append(usage.ru_maxrss * 1024)


def timed(run: Callable[[], None]) -> float:
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        sys.exit("curl is needed")
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="bench-ollama-", dir=args.dir))
    registry = start_registry(work / "registry")
    env = {**os.environ, "HANZO_HOME": str(work / "hanzo"), "HANZO_PLUGINS": "ollama", "HANZO_PROGRESS": "0"}
    env["OLLAMA_HOST"] = "http://127.0.0.1:9"  # no server: native mode
    try:
        digest = make_model(Store(work / "hanzo" / "models"), "bench/model:v1", size)
        target = f"{registry.host}/bench/model:v1"
        push_s = timed(lambda: hanzo("model:push", "local:bench/model:v1", target, "--insecure", env=env))
        blob_url = registry.blob_url("bench/model", digest)
        out = work / "curl.out"

        def hanzo_pull() -> None:
            store = work / "pulled"
            shutil.rmtree(store, ignore_errors=True)
            hanzo(
                "model:pull",
                "--native",
                "--insecure",
                "-q",
                f"ollama:{target}",
                env={**env, "OLLAMA_MODELS": str(store)},
            )

        def curl() -> None:
            out.unlink(missing_ok=True)
            subprocess.run(["curl", "-sSf", "-o", str(out), blob_url], check=True)

        def curl_sha() -> None:
            curl()
            subprocess.run(["sha256sum", str(out)], check=True, capture_output=True)

        def curl_tee_openssl() -> None:
            out.unlink(missing_ok=True)
            script = 'curl -sSf "$1" | tee "$2" | openssl dgst -sha256 >/dev/null'
            subprocess.run(["sh", "-c", script, "sh", blob_url, str(out)], check=True)

        variants = {
            "hanzo": hanzo_pull,
            "curl": curl,
            "curl+sha256sum": curl_sha,
            "curl|tee|openssl": curl_tee_openssl,
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, run in variants.items():
                times[name].append(timed(run))
        pulled = Store(work / "pulled").blob_path(digest)
        assert pulled.stat().st_size == size

        print(f"blob {args.size_mib} MiB, {args.runs} runs, registry {registry.host}, cpus {os.cpu_count()}")
        print(f"push (hanzo model:push, end to end): {push_s:.2f} s, {size / MiB / push_s:.0f} MiB/s")
        PEAK_RSS.pop(0)  # the push's
        base = statistics.median(times["curl"])
        for name, values in times.items():
            median = statistics.median(values)
            runs = " ".join(f"{v:.2f}" for v in values)
            print(
                f"{name:<15} median {median:6.2f} s  {size / MiB / median:6.0f} MiB/s  "
                f"x{median / base:.2f} of curl  (runs: {runs})"
            )
        ours = statistics.median(times["hanzo"])
        tee = statistics.median(times["curl|tee|openssl"])
        print(
            f"curl|tee|openssl / hanzo = {tee / ours:.2f} (goal >= 1.3), curl / hanzo = {base / ours:.2f} "
            f"(goal >= 0.6), hanzo peak RSS {max(PEAK_RSS) / MiB:.0f} MiB (goal <= 80)"
        )
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
