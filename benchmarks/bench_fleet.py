"""A fleet pulling one model at once through a pull-through cache: what it costs the upstream.

    .venv/bin/python benchmarks/bench_fleet.py [--machines 8] [--size-mib 128] [--runs 2] [--mtu 1500]

Two real CNCF distribution registries on loopback (Debian's ``docker-registry``): an upstream
holding an Ollama model whose model layer is SIZE MiB of random data, and a pull-through cache
(``proxy: remoteurl:``) in front of it, fresh for every run. MACHINES processes start at once, each
with a store of its own (a machine of the fleet), pulling through the cache:

* ``hanzo``: ``hanzo model:pull`` with ``HANZO_REGISTRY_MIRRORS`` naming the cache (verified);
* ``curl``: ``curl -o`` of the blob's URL on the cache, as any client that does not wait for the
  cache's fill would fetch it.

Printed per variant: the upstream's bytes for the blob (its access log) divided by the blob's
size, the goal being <= 1.05 (issue 16), and the slowest machine's time.

What a client that gives up a stream costs the upstream is what the kernel's socket buffers took
in meanwhile, and those scale with the segment size: loopback's 64 KiB MTU makes them megabytes,
where an Ethernet LAN's 1500 bytes keeps them near 100 KiB. ``--mtu 1500`` runs everything in a
private network namespace (``unshare -rn``: no root needed where user namespaces are allowed)
whose loopback has that MTU, as a fleet's LAN would.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.registry import Registry, start_registry  # noqa: E402 - after the sys.path fix

MiB = 1024 * 1024
_INSIDE = "HANZO_BENCH_FLEET_NETNS"  # set once re-executed inside the namespace


def blob_bytes_served(reg: Registry, digest: str) -> int:
    """Bytes of ``digest``'s GETs in the registry's access log (combined format: status, size)."""
    pattern = re.compile(rf'"GET /v2/[^ ]*/blobs/{re.escape(digest)} HTTP/[\d.]+" (\d+) (\d+)')
    return sum(int(m.group(2)) for m in pattern.finditer(reg.log.read_text()))


def run_fleet(commands: list[list[str]], envs: list[dict[str, str]]) -> float:
    """Start every command at once; the slowest one's seconds. Any failure ends the benchmark."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for cmd, env in zip(commands, envs, strict=True)
    ]
    for cmd, proc in zip(commands, procs, strict=True):
        _out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            sys.exit(f"{cmd[0]} failed: {err.decode(errors='replace')[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--machines", type=int, default=8)
    parser.add_argument("--size-mib", type=int, default=128)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--mtu", type=int, default=None, help="loopback MTU in a private namespace")
    args = parser.parse_args()
    if args.mtu and not os.environ.get(_INSIDE):
        if shutil.which("unshare") is None or shutil.which("ip") is None:
            sys.exit("--mtu needs unshare (util-linux) and ip (iproute2)")
        script = f'ip link set lo mtu {int(args.mtu)} up && exec "$0" "$@"'
        argv = ["unshare", "-rn", "sh", "-c", script, sys.executable, *sys.argv]
        os.execvpe("unshare", argv, {**os.environ, _INSIDE: "1"})
    if shutil.which("curl") is None:
        sys.exit("curl is needed")

    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    upstream = start_registry(work / "upstream", access_log=True)
    try:
        data = os.urandom(size)
        manifest = upstream.push_ollama_model("ns/model", "v1", [("model", data)])
        digest = manifest["layers"][0]["digest"]
        del data
        ratios: dict[str, list[float]] = {"hanzo": [], "curl": []}
        times: dict[str, list[float]] = {"hanzo": [], "curl": []}
        for run in range(args.runs):
            for variant in ratios:
                cache = start_registry(work / f"cache-{variant}-{run}", proxy_remote=upstream.url)
                try:
                    before = blob_bytes_served(upstream, digest)
                    commands, envs = [], []
                    for i in range(args.machines):
                        home = work / f"{variant}-{run}-machine{i}"
                        home.mkdir()
                        if variant == "hanzo":
                            commands.append(
                                [sys.executable, "-m", "hanzo_cli", "model:pull", "--insecure", "-q",
                                 f"ollama:{upstream.host}/ns/model:v1"]
                            )  # fmt: skip
                            envs.append({
                                **os.environ, "HOME": str(home), "HANZO_HOME": str(home / "hanzo"),
                                "HANZO_PLUGINS": "ollama", "HANZO_PROGRESS": "0",
                                "OLLAMA_HOST": "http://127.0.0.1:9",
                                "HANZO_REGISTRY_MIRRORS": f"{upstream.host}={cache.url}",
                            })  # fmt: skip
                        else:
                            commands.append(
                                ["curl", "-sSf", "-o", str(home / "blob"), cache.blob_url("ns/model", digest)]
                            )
                            envs.append(dict(os.environ))
                    times[variant].append(run_fleet(commands, envs))
                    time.sleep(0.5)  # the access log is written after the response
                    served = blob_bytes_served(upstream, digest) - before
                    ratios[variant].append(served / size)
                    print(f"  run {run + 1} {variant}: upstream {served / size:.3f} x the blob, "
                          f"slowest machine {times[variant][-1]:.2f} s", flush=True)  # fmt: skip
                finally:
                    cache.stop()
                shutil.rmtree(work / f"cache-{variant}-{run}", ignore_errors=True)
                for home in work.glob(f"{variant}-{run}-machine*"):
                    shutil.rmtree(home, ignore_errors=True)
        # (Not /sys/class/net: sysfs there shows the host's namespace.)
        link = subprocess.run(["ip", "-o", "link", "show", "lo"], capture_output=True, text=True).stdout
        mtu = re.search(r"mtu (\d+)", link).group(1) if "mtu" in link else "?"  # type: ignore[union-attr]
        print(f"\n{args.machines} machines, {args.size_mib} MiB blob, loopback MTU {mtu}, {args.runs} runs")
        for variant in ratios:
            print(
                f"  {variant:<6} upstream bytes / blob: median {statistics.median(ratios[variant]):.3f} "
                f"(runs: {' '.join(f'{r:.3f}' for r in ratios[variant])}); slowest machine "
                f"{statistics.median(times[variant]):.2f} s   (goal for hanzo: <= 1.05)"
            )
    finally:
        upstream.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
