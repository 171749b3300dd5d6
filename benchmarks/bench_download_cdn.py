"""hanzo's downloader behind a CDN-like edge, against aria2c and curl (issue 16's goals).

    .venv/bin/python benchmarks/bench_download_cdn.py [--size-mib 256] [--rate 25m] [--runs 3]

nginx (Debian ``nginx``) serves a random blob with ``limit_rate`` per connection, as CDN edges
cap each connection; everything is on loopback. Each variant runs in its own process, interleaved,
into a fresh file, sha256-verified where the tool can: hanzo (its default: adaptive, up to 16
connections), ``aria2c -x16 -s16 --checksum=sha-256=...``, and ``curl`` (one connection).
Printed: median seconds and the goal ratios, aria2c time / hanzo time (goal >= 1.5) and
curl time / hanzo time (goal >= 8), plus the bytes nginx sent per hanzo run (over-fetch of
work stealing).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.nginx import start_nginx  # noqa: E402 - after the sys.path fix

MiB = 1024 * 1024

_HANZO = (
    "import sys; from pathlib import Path; from hanzo_cli.download import download; "
    "download(sys.argv[1], Path(sys.argv[2]), sha256=sys.argv[3])"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--rate", default="25m", help="nginx limit_rate per connection")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-curl", action="store_true", help="skip curl (slow: one capped connection)")
    args = ap.parse_args()
    for tool in ("aria2c", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed for the comparison")
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="hanzo-cdn-bench-"))
    try:
        root = work / "root"
        root.mkdir()
        data = os.urandom(size)
        (root / "blob").write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        del data
        server = start_nginx(work / "nginx", root, limit_rate=args.rate)
        url = server.url + "/blob"
        out = work / "out.bin"
        env = dict(os.environ, PYTHONPATH=str(ROOT), HANZO_PROGRESS="0")
        variants: dict[str, list[str]] = {
            "hanzo (adaptive, cap 16)": [sys.executable, "-c", _HANZO, url, str(out), digest],
            "aria2c -x16 -s16, sha256": [
                "aria2c",
                "-q",
                "-x16",
                "-s16",
                "--allow-overwrite=true",
                "--auto-file-renaming=false",
                f"--checksum=sha-256={digest}",
                "-d",
                str(work),
                "-o",
                out.name,
                url,
            ],
        }
        if not args.no_curl:
            variants["curl (one connection)"] = ["curl", "-sS", "-o", str(out), url]
        times: dict[str, list[float]] = {name: [] for name in variants}
        over: list[float] = []
        try:
            for run in range(args.runs):
                for name, argv in variants.items():
                    for leftover in work.glob("out.bin*"):
                        leftover.unlink()
                    os.sync()
                    before = server.bytes_sent("/blob")
                    start = time.perf_counter()
                    subprocess.run(argv, check=True, env=env, cwd=ROOT)
                    elapsed = time.perf_counter() - start
                    times[name].append(elapsed)
                    if name.startswith("hanzo"):
                        time.sleep(0.2)  # nginx logs aborted requests once it sees the close
                        over.append((server.bytes_sent("/blob") - before) / size)
                    print(f"  run {run + 1} {name}: {elapsed:6.2f} s", flush=True)
        finally:
            server.stop()
        med = {name: statistics.median(t) for name, t in times.items()}
        hanzo = med["hanzo (adaptive, cap 16)"]
        print()
        print(
            f"{args.size_mib} MiB from nginx, limit_rate {args.rate} per connection (median of {args.runs}):"
        )
        for name, seconds in med.items():
            print(f"  {name:28} {seconds:7.2f} s  {size / MiB / seconds:8.1f} MiB/s")
        print(f"  aria2c / hanzo: {med['aria2c -x16 -s16, sha256'] / hanzo:5.2f}   (goal >= 1.5)")
        if not args.no_curl:
            print(f"  curl / hanzo:   {med['curl (one connection)'] / hanzo:5.2f}   (goal >= 8)")
        print(f"  bytes nginx sent per hanzo run: {statistics.median(over):.3f} x the file")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
