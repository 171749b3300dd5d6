"""``hanzo model:pull`` vs ``hf download`` for the same file on the same loopback Hub.

Serves one random ``model-Q8_0.gguf`` (LFS, behind a CDN redirect, as on huggingface.co) from the
test suite's Hub stand-in, then times each command end to end (process start included) into a fresh
Hugging Face cache, alternating the two, and prints the medians and their ratio::

    .venv/bin/python benchmarks/bench_hf_pull.py [--size-mb 300] [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.fileserver import FileServer
from tests.huggingface.hubserver import FakeHub

REPO = "bench/model-GGUF"
FILE = "model-Q8_0.gguf"


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def pulled_sha256(hf_home: Path) -> str:
    (path,) = (hf_home / "hub").glob(f"models--*/snapshots/*/{FILE}")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=300, help="file size in MB (default 300)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (default 3)")
    parser.add_argument(
        "--connections", type=int, help="HANZO_DOWNLOAD_CONNECTIONS for hanzo (default: its own)"
    )
    args = parser.parse_args()

    size = args.size_mb * 1_000_000
    data = os.urandom(size)
    expected = hashlib.sha256(data).hexdigest()
    hf_cli = str(Path(sys.executable).with_name("hf"))
    commands = {
        "hanzo model:pull": [sys.executable, "-m", "hanzo_cli", "model:pull", f"hf:{REPO}:Q8_0", "--quiet"],
        "hf download": [hf_cli, "download", REPO, FILE, "--quiet"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    with FileServer() as server, tempfile.TemporaryDirectory(prefix="bench-hf-") as tmp:
        hub = FakeHub(server)
        hub.add_repo(REPO, {FILE: data})
        del data
        base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HANZO_"))}
        base.update(HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_TELEMETRY="1", HANZO_PROGRESS="0")
        if args.connections:
            base["HANZO_DOWNLOAD_CONNECTIONS"] = str(args.connections)
        for run in range(args.runs):
            for name, command in commands.items():
                home = Path(tmp) / f"{run}-{name.split()[0]}"
                env = {**base, "HF_HOME": str(home / "hf"), "HANZO_HOME": str(home / "hanzo")}
                times[name].append(timed(command, env))
                if pulled_sha256(home / "hf") != expected:
                    raise SystemExit(f"{name} produced a wrong file")
                subprocess.run(["rm", "-rf", str(home)], check=True)

    print(
        f"{args.size_mb} MB file, loopback Hub with CDN redirect, {args.runs} runs each (median, wall clock):"
    )
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, median in medians.items():
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"  {name:<17} {median:6.2f} s  {size / median / 1e6:7.1f} MB/s   (runs: {runs} s)")
    ratio = medians["hf download"] / medians["hanzo model:pull"]
    print(f"  ratio: hanzo model:pull runs at {ratio:.2f}x the speed of hf download")


if __name__ == "__main__":
    main()
