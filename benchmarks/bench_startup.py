"""Start-up cost: ``hanzo --help`` ÷ ``python -c "import click"``, medians of interleaved runs.

Goal: <= 2.0 with every plugin installed. Run: ``python benchmarks/bench_startup.py [--runs 21]``.
Interleaving puts both commands under the same machine noise; the ratio is what we track.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    hanzo = shutil.which("hanzo", path=str(Path(sys.executable).parent)) or shutil.which("hanzo")
    if hanzo is None:
        sys.exit("hanzo is not installed in this environment")
    commands = {"hanzo --help": [hanzo, "--help"], "import click": [sys.executable, "-c", "import click"]}
    for cmd in commands.values():  # warm the page cache and .pyc files
        timed(cmd)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, cmd in commands.items():
            samples[name].append(timed(cmd))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, value in medians.items():
        print(f"{name:<14} median {value * 1000:7.1f} ms over {args.runs} runs")
    ratio = medians["hanzo --help"] / medians["import click"]
    print(f"ratio hanzo --help / import click = {ratio:.2f} (goal <= 2.0)")


if __name__ == "__main__":
    main()
