"""Adaptive parallelism of the downloader: connections added while throughput rises, halved on
429, work stealing at the end; against nginx as a CDN edge (per-connection ``limit_rate``) and the
test file server. Small files and low rates keep each test around a second; speed itself is
measured in benchmarks/bench_download_cdn.py, never asserted here."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import hanzo_cli.download.ramp as ramp
from hanzo_cli.download import download
from tests.fixtures.fileserver import FileServer
from tests.fixtures.nginx import Nginx, nginx_binary, start_nginx

__all__ = ["nginx_binary"]  # a fixture, used by name

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def _fast_and_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANZO_DOWNLOAD_BACKOFF", "0.01")
    monkeypatch.setenv("HANZO_PROGRESS", "0")
    monkeypatch.delenv("HANZO_DOWNLOAD_CONNECTIONS", raising=False)


def blob(root: Path, size: int) -> tuple[bytes, str]:
    data = bytearray((hashlib.sha256(b"seed").digest() * (size // 32 + 1))[:size])
    for i in range(0, size, 4096):  # distinct pages, so misplaced ranges are caught
        data[i : i + 8] = i.to_bytes(8, "little")
    root.mkdir(parents=True, exist_ok=True)
    (root / "blob").write_bytes(data)
    return bytes(data), hashlib.sha256(data).hexdigest()


@pytest.fixture
def edge(tmp_path: Path, nginx_binary: str) -> Iterator[tuple[Nginx, bytes, str]]:
    """nginx capping each connection at 4 MiB/s, serving a 24 MiB blob."""
    data, digest = blob(tmp_path / "root", 24 * MiB)
    server = start_nginx(tmp_path / "nginx", tmp_path / "root", limit_rate="4m", binary=nginx_binary)
    try:
        yield server, data, digest
    finally:
        server.stop()


# --- the ramp, on its own ---------------------------------------------------------------------------


def feed(r: ramp.Ramp, rate_for: object, until: float) -> list[int]:
    """Feed ``r`` samples every 10 ms of a link whose throughput is ``rate_for(target)``."""
    now, total, targets = 0.0, 0.0, []
    while now < until:
        now += 0.01
        total += rate_for(r.target) * 0.01  # type: ignore[operator]
        targets.append(r.sample(now, int(total)))
    return targets


def test_ramp_climbs_while_each_connection_adds_throughput() -> None:
    r = ramp.Ramp(16, 0.0)
    targets = feed(r, lambda n: n * 25 * MiB, 3.0)  # a CDN edge: 25 MiB/s per connection
    assert targets[0] == ramp.START == 1 and targets[-1] == 16
    # A doubling that paid in proportion is followed by a bigger step; never past the cap.
    assert sorted(set(targets)) == [1, 2, 8, 16]
    assert targets.index(16) <= 70  # within 0.7 s: below the cap, every window costs
    # A lower cap is reached too, whatever the step.
    assert feed(ramp.Ramp(6, 0.0), lambda n: n * 25 * MiB, 3.0)[-1] == 6


def mostly(targets: list[int]) -> int:
    """The target held for most of the samples (probes come and go)."""
    return max(set(targets), key=targets.count)


def test_ramp_stops_when_the_link_is_full() -> None:
    # 16 does not add anything over 8: kept at 8 (reached by 1, 2, 8), and 16 probed now and
    # then.
    assert mostly(feed(ramp.Ramp(16, 0.0), lambda n: min(n, 8) * 25 * MiB, 5.0)) == 8
    # 2 to 8 overshot 3: 4 is measured, and kept as it gives within 10% of 8.
    assert mostly(feed(ramp.Ramp(16, 0.0), lambda n: min(n, 3) * 25 * MiB, 5.0)) == 4
    # Halfway is clearly slower than the top: the top is kept.
    assert mostly(feed(ramp.Ramp(16, 0.0), lambda n: min(n, 7) * 25 * MiB, 5.0)) == 8


def test_ramp_keeps_one_connection_on_a_fast_link() -> None:
    """One connection already fills the link: more only cost threads and requests."""
    targets = feed(ramp.Ramp(16, 0.0), lambda n: 800 * MiB, 20.0)
    assert mostly(targets) == 1 and max(targets) == 2
    # Probes of 2 that do not pay come less and less often (each costs a window).
    probes = [i for i in range(1, len(targets)) if targets[i] == 2 and targets[i - 1] == 1]
    assert 2 <= len(probes) <= 5
    assert probes[-1] - probes[-2] > probes[1] - probes[0]


def test_ramp_steps_back_when_more_connections_are_slower() -> None:
    assert mostly(feed(ramp.Ramp(16, 0.0), lambda n: n * 25 * MiB if n <= 4 else 50 * MiB, 5.0)) == 4


def test_ramp_probes_again_after_a_bad_window() -> None:
    """A window that saw no gain (connections still starting, a busy CPU) does not cap it for good."""
    r = ramp.Ramp(16, 0.0)
    slow_until = 0.8  # the first judgement of 8 connections sees no gain

    def rate(n: int, now: list[float] = [0.0]) -> float:  # noqa: B006 - a clock shared by calls
        now[0] += 0.01
        return 4 * 25 * MiB if now[0] < slow_until else n * 25 * MiB

    assert feed(r, rate, 5.0)[-1] == 16


def test_ramp_halves_on_429_and_holds() -> None:
    r = ramp.Ramp(16, 0.0)
    feed(r, lambda n: n * MiB, 2.0)
    assert r.target == 16
    assert r.throttled(10.0) == 8
    assert r.sample(12.0, 10**9) == 8 and r.sample(14.0, 2 * 10**9) == 8  # held for THROTTLE_HOLD
    assert ramp.Ramp(1, 0.0).target == 1 and ramp.Ramp(2, 0.0).throttled(0.0) == 1


# --- against a CDN-like edge ------------------------------------------------------------------------


def test_capped_connections_are_multiplied(edge: tuple[Nginx, bytes, str], tmp_path: Path) -> None:
    server, data, digest = edge
    result = download(server.url + "/blob", tmp_path / "out", sha256=digest)
    assert result.sha256 == digest and (tmp_path / "out").read_bytes() == data
    requests = server.requests()
    # Ramped up past the start, as each connection adds 4 MiB/s.
    assert server.max_concurrency("/blob") > ramp.START
    # Work stealing at the end closes connections at split points: what was in flight is lost.
    assert server.bytes_sent("/blob") <= 1.2 * len(data)
    # 499: nginx's "client closed the connection", at split points.
    assert {status for uri, status, *_r in requests if uri == "/blob"} <= {206, 499}


def test_the_cap_is_respected(
    edge: tuple[Nginx, bytes, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _data, digest = edge
    monkeypatch.setenv("HANZO_DOWNLOAD_CONNECTIONS", "2")
    download(server.url + "/blob", tmp_path / "out", sha256=digest)
    assert server.max_concurrency("/blob") <= 2


def test_429_halves_the_connections(tmp_path: Path, nginx_binary: str) -> None:
    """An edge that allows 3 connections per client and answers more with 429 + Retry-After."""
    data, digest = blob(tmp_path / "root", 24 * MiB)
    server = start_nginx(
        tmp_path / "nginx", tmp_path / "root", limit_rate="8m", max_connections=3, binary=nginx_binary
    )
    try:
        result = download(server.url + "/blob", tmp_path / "out", sha256=digest)
        statuses = [status for uri, status, *_r in server.requests() if uri == "/blob"]
    finally:
        server.stop()
    assert result.sha256 == digest and (tmp_path / "out").read_bytes() == data
    assert 429 in statuses  # the ramp's 4 were one too many
    assert statuses.count(429) <= 6  # it backed off instead of hammering the edge


def test_the_slow_last_part_is_shared(tmp_path: Path) -> None:
    """A file planned as one part (below the multipart threshold) on a slow response: idle
    connections take over the second half of what is left, again and again."""
    data, digest = blob(tmp_path / "root", 4 * MiB)
    with FileServer() as server:
        server.add_file("/blob", data, throttle=2 * MiB)  # per response
        result = download(server.url("/blob"), tmp_path / "out", sha256=digest)
        ranges = [r.headers["range"] for r in server.requests_for("/blob") if "range" in r.headers]
        sent = server.bytes_sent("/blob")
    assert result.sha256 == digest and (tmp_path / "out").read_bytes() == data
    assert len(ranges) >= 3  # the probe, the first request and at least one stolen half
    assert sent <= 1.05 * len(data)


_CHILD = """
import sys
from pathlib import Path
from hanzo_cli.download import download
download(sys.argv[1], Path(sys.argv[2]), sha256=sys.argv[3], connections=16)
"""


def test_kill_9_with_16_connections_refetches_little(tmp_path: Path, nginx_binary: str) -> None:
    size = 32 * MiB
    data, digest = blob(tmp_path / "root", size)
    server = start_nginx(tmp_path / "nginx", tmp_path / "root", limit_rate="1m", binary=nginx_binary)
    dest = tmp_path / "out"
    state_file = tmp_path / "out.partial.json"
    try:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, server.url + "/blob", str(dest), digest], env=env
        )
        try:
            deadline = time.monotonic() + 30
            claimed = 0
            while claimed < 0.3 * size:  # the state file says what survives the kill
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
                try:
                    parts = json.loads(state_file.read_text())["parts"]
                except (OSError, ValueError):
                    continue
                claimed = sum(done for _s, _e, done in parts)
            busy = sum(1 for s, e, done in parts if 0 < done < e - s)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
        assert busy >= 8  # many connections were in flight
        time.sleep(0.2)  # nginx logs the aborted requests when it notices the closed sockets
        sent_before = server.bytes_sent("/blob")
        result = download(server.url + "/blob", dest, sha256=digest, connections=16)
        total = server.bytes_sent("/blob")
    finally:
        server.stop()
    assert result.resumed and result.sha256 == digest and dest.read_bytes() == data
    # Re-fetched: at most what was in flight at the kill (data sent but not yet written: a little
    # per connection at this rate) plus one state-save interval (1% of the file, at least 512 KiB).
    refetched = total - size
    assert refetched <= max(size // 100, 512 * 1024) + 16 * 256 * 1024, (sent_before, claimed, total)
