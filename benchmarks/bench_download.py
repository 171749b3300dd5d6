"""Throughput and memory of hanzo_cli.download.download against curl, on loopback.

    .venv/bin/python benchmarks/bench_download.py [--size-mib 1024] [--runs 3] [--connections 1,4] [--pycurl]

A random file is served by the test file server (tests/fixtures/fileserver.py, which uses
sendfile, so the server costs little CPU) running in this process; curl and our downloader, each
in a child process, fetch it in interleaved runs into a fresh file in the same directory. Each
child's peak RSS comes from GNU time (/usr/bin/time). The page cache is flushed (sync) before every
run so that one run's dirty pages do not slow the next.

Printed per variant: median wall time, MiB/s, ratio to curl, peak RSS. Our download always
computes the sha256 (it returns it) and here also verifies it; "curl, then sha256" is the fair
comparison for a verified download, plain "curl" the bare one, and the time to hash the file alone
is the floor for any verified download on this CPU. ``--hash-off`` adds diagnostic runs with the
hashing patched out, to see the transport alone.
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
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.fileserver import FileServer  # noqa: E402 - after the sys.path fix

MiB = 1024 * 1024

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
import hanzo_cli.download as dl
import hanzo_cli.download.hashing as hashing
import hanzo_cli.download.receive as receive
url, dest, sha, conns, hash_off = sys.argv[1], sys.argv[2], sys.argv[3] or None, int(sys.argv[4]), sys.argv[5]
receive.ENABLED = sys.argv[6] == "0"  # "1": bodies through httpx's iter_raw (the earlier path)
if hash_off == "1":
    # Diagnostic only: the transport without the sha256 (this CPU may hash slower than loopback).
    class _NoHash:
        def update(self, data): pass
        def hexdigest(self): return "0" * 64
    class _NoHashlib:
        sha256 = _NoHash
    hashing.hashlib = _NoHashlib
t1 = time.perf_counter()
r = dl.download(url, Path(dest), sha256=sha, connections=conns)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "download_s": t2 - t1, "size": r.size, "sha256": r.sha256}))
"""
# The libcurl binding weighed in issue 16: pycurl into the same file, hashed as it lands (one connection;
# libcurl calls back into Python for every block, as any pycurl download that verifies must).
_PYCURL = r"""
import hashlib, sys
import pycurl
url, dest, sha = sys.argv[1], sys.argv[2], sys.argv[3]
h = hashlib.sha256()
with open(dest, "wb") as f:
    def write(block):
        f.write(block)
        h.update(block)
    c = pycurl.Curl()
    c.setopt(pycurl.URL, url)
    c.setopt(pycurl.BUFFERSIZE, 1 << 20)
    c.setopt(pycurl.WRITEFUNCTION, write)
    c.perform()
    c.close()
if sha and h.hexdigest() != sha:
    raise SystemExit("pycurl: wrong digest")
"""
_TIME = "/usr/bin/time"  # GNU time: its child's peak RSS is the child's own


@dataclass
class Variant:
    name: str
    argv: list[str]
    times: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    inner: list[float] = field(default_factory=list)  # download() time inside the child


def run_child(argv: list[str], env: dict[str, str]) -> tuple[float, int, float, str]:
    """Wall seconds, peak RSS (KiB), CPU seconds and stdout of one child process.

    The peak RSS is measured by GNU time when present: a child forked straight from this (large)
    process would report this process's pages as its own peak, since ru_maxrss survives exec.
    """
    marker = "@@rusage"
    use_time = os.path.exists(_TIME)
    if use_time:
        argv = [_TIME, "-f", f"{marker} %M %U %S", *argv]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, env=env, cwd=ROOT, check=False)
    elapsed = time.perf_counter() - start
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode}): {err[-2000:]}")
    rss, cpu = -1, -1.0
    for line in err.splitlines():
        if line.startswith(marker):
            _, m, u, s = line.split()
            rss, cpu = int(m), float(u) + float(s)
    return elapsed, rss, cpu, proc.stdout.decode()


def make_file(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(16 * MiB, left))
            h.update(block)
            f.write(block)
            left -= len(block)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--connections", default="16,1", help="comma-separated connection caps to try (16: the default)"
    )
    ap.add_argument("--dir", default=None, help="where to put the files (default: a temp dir)")
    ap.add_argument("--no-verify", action="store_true", help="do not pass the expected sha256")
    ap.add_argument(
        "--hash-off",
        action="store_true",
        help="also time a diagnostic run with hashing patched out (the transport alone)",
    )
    ap.add_argument(
        "--httpx-body",
        action="store_true",
        help="also time the body read through httpx's iter_raw instead of the socket (the earlier path)",
    )
    ap.add_argument(
        "--pycurl",
        action="store_true",
        help="also time pycurl (libcurl's binding; not a dependency) verifying the sha256",
    )
    args = ap.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed for the comparison")

    size = args.size_mib * MiB
    workdir = Path(tempfile.mkdtemp(prefix="hanzo-bench-", dir=args.dir))
    try:
        src = workdir / "source.bin"
        print(f"making a {args.size_mib} MiB random file in {workdir} ...", flush=True)
        digest = make_file(src, size)
        out = workdir / "out.bin"
        env = dict(os.environ, PYTHONPATH=str(ROOT), HANZO_PROGRESS="0")
        with FileServer() as server:
            server.add_file("/blob", src)
            url = server.url("/blob")
            # OpenSSL's sha256 is what Python's hashlib uses; coreutils' sha256sum may be slower.
            hasher = "openssl dgst -sha256" if shutil.which("openssl") else "sha256sum"
            variants = [
                Variant("curl", ["curl", "-sS", "-o", str(out), url]),
                Variant(
                    f"curl, then {hasher.split()[0]} sha256",
                    ["sh", "-c", f'curl -sS -o "$1" "$2" && {hasher} "$1" >/dev/null', "sh", str(out), url],
                ),
                # The same work by plain tools at once (issue 16's yardstick): one pass, hashed as it lands.
                Variant(
                    f"curl | tee | {hasher.split()[0]} sha256",
                    ["sh", "-c", f'curl -sS "$2" | tee "$1" | {hasher} >/dev/null', "sh", str(out), url],
                ),
                # Not a download: how fast this CPU hashes (the floor for any verified download).
                Variant(
                    f"({hasher.split()[0]} sha256 of the file alone)",
                    ["sh", "-c", f'{hasher} "$1"', "sh", str(src)],
                ),
            ]
            expected = "" if args.no_verify else digest
            if args.pycurl:
                variants.append(
                    Variant("pycurl, sha256 verified", [sys.executable, "-c", _PYCURL, url, str(out), digest])
                )
            for conns in [int(c) for c in args.connections.split(",") if c.strip()]:
                name = f"hanzo, {conns} conn" + ("" if args.no_verify else ", sha256 verified")
                argv = [sys.executable, "-c", _CHILD, url, str(out), expected, str(conns), "0", "0"]
                variants.append(Variant(name, argv))
            if args.httpx_body:
                for conns in [int(c) for c in args.connections.split(",") if c.strip()]:
                    name = f"(diagnostic) hanzo, {conns} conn, httpx iter_raw"
                    argv = [sys.executable, "-c", _CHILD, url, str(out), expected, str(conns), "0", "1"]
                    variants.append(Variant(name, argv))
            if args.hash_off:
                for conns in [int(c) for c in args.connections.split(",") if c.strip()]:
                    name = f"(diagnostic) hanzo, {conns} conn, hash off"
                    argv = [sys.executable, "-c", _CHILD, url, str(out), "", str(conns), "1", "0"]
                    variants.append(Variant(name, argv))
            for run in range(args.runs):
                for v in variants:
                    for leftover in workdir.glob("out.bin*"):
                        leftover.unlink()
                    os.sync()  # earlier runs' dirty pages must not be written back during this one
                    elapsed, rss, cpu, stdout = run_child(v.argv, env)
                    if not v.name.startswith("(") and out.stat().st_size != size:
                        raise SystemExit(f"{v.name}: wrong size {out.stat().st_size}")
                    v.times.append(elapsed)
                    v.rss_kib.append(rss)
                    v.cpu.append(cpu)
                    if stdout.strip().startswith("{"):
                        info = json.loads(stdout)
                        assert info["sha256"] in (digest, "0" * 64), "wrong digest"
                        v.inner.append(info["download_s"])
                    print(f"  run {run + 1} {v.name}: {size / MiB / elapsed:8.1f} MiB/s", flush=True)
            print(f"server sent {server.bytes_sent() / MiB:.0f} MiB in total")

        curl_median = statistics.median(variants[0].times)
        tee_median = statistics.median(variants[2].times)
        print()
        print(f"{args.size_mib} MiB over loopback into {workdir} (median of {args.runs}):")
        print(f"{'variant':42} {'seconds':>8} {'MiB/s':>8} {'vs curl':>8} {'peak RSS':>12} {'CPU s':>6}")
        for v in variants:
            med = statistics.median(v.times)
            rss_text = f"{max(v.rss_kib) / 1024:8.1f} MiB" if min(v.rss_kib) >= 0 else "         ?"
            line = (
                f"{v.name:42} {med:8.2f} {size / MiB / med:8.1f} {curl_median / med:8.2f}"
                f" {rss_text} {statistics.median(v.cpu):6.2f}"
            )
            if v.inner:
                line += f"   (inside download(): {size / MiB / statistics.median(v.inner):.1f} MiB/s)"
            print(line)
        pycurl_runs = [v for v in variants if v.name.startswith("pycurl")]
        for v in variants:
            if v.name.startswith("hanzo") and pycurl_runs:
                ratio = statistics.median(pycurl_runs[0].times) / statistics.median(v.times)
                print(f"{v.name}: pycurl / hanzo = {ratio:.2f}")
        for v in variants:
            if v.name.startswith("hanzo"):
                med = statistics.median(v.times)
                print(
                    f"{v.name}: curl|tee|sha256 / hanzo = {tee_median / med:.2f} (goal >= 1.3), "
                    f"curl / hanzo = {curl_median / med:.2f} (goal >= 0.6), "
                    f"peak RSS {max(v.rss_kib) / 1024:.0f} MiB (goal <= 80)"
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
