"""hanzo_cli.download against the loopback file server, with faults injected server-side."""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import hanzo_cli.download as dl
import hanzo_cli.download.policy as policy
import hanzo_cli.download.state as plan
from hanzo_cli.download import DownloadResult, download
from hanzo_cli.errors import (
    DiskFullError,
    DownloadError,
    IntegrityError,
    ModelNotFoundError,
    RemoteFileNotFoundError,
)
from tests.fixtures.fileserver import FileServer, Handler

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


@pytest.fixture
def server() -> Iterator[FileServer]:
    with FileServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fast_and_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANZO_DOWNLOAD_BACKOFF", "0.01")
    monkeypatch.setenv("HANZO_PROGRESS", "0")
    monkeypatch.delenv("HANZO_DOWNLOAD_CONNECTIONS", raising=False)


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split files of a few MiB into 1 MiB parts, as a multi-GB blob would be split."""
    monkeypatch.setattr(plan, "MULTIPART_THRESHOLD", 1 * MiB)
    monkeypatch.setattr(plan, "MIN_PART_SIZE", 1 * MiB)


def payload(size: int, seed: int = 0) -> bytes:
    # Deterministic and incompressible enough; cheaper than os.urandom for several MiB.
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
    reps = -(-size // len(block))
    data = bytearray(block * reps)[:size]
    for i in range(0, size, 4096):  # make every page distinct so misplaced pages are caught
        data[i : i + 8] = i.to_bytes(8, "little")
    return bytes(data)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(dest: Path) -> list[str]:
    """Files next to dest named after it (partial, state, lock, temp)."""
    return sorted(p.name for p in dest.parent.iterdir() if p != dest and p.name.startswith(dest.name))


def range_requests(server: FileServer, path: str) -> list[str]:
    return [r.headers["range"] for r in server.requests_for(path) if "range" in r.headers]


class RecordingBar:
    def __init__(self) -> None:
        self.total: int | None = None
        self.completed = 0
        self.closed = False

    def update(self, n: int) -> None:
        self.completed += n

    def set_total(self, total: int | None) -> None:
        self.total = total

    def set_completed(self, completed: int) -> None:
        self.completed = completed

    def close(self) -> None:
        self.closed = True


class InterruptingBar(RecordingBar):
    """Raises KeyboardInterrupt (as Ctrl-C would) once some bytes have arrived."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    def update(self, n: int) -> None:
        super().update(n)
        if self.completed >= self.after:
            raise KeyboardInterrupt


# --- happy paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("give_size", [True, False])
def test_small_file(server: FileServer, tmp_path: Path, give_size: bool) -> None:
    data = payload(300_000)
    server.add_file("/blob", data)
    dest = tmp_path / "nested" / "dir" / "model.bin"  # parents are created
    bar = RecordingBar()
    result = download(
        server.url("/blob"), dest, size=len(data) if give_size else None, sha256=sha(data), bar=bar
    )
    assert result == DownloadResult(
        path=dest, size=len(data), sha256=sha(data), fetched=len(data), resumed=False
    )
    assert dest.read_bytes() == data
    assert leftovers(dest) == []
    assert bar.total == len(data) and bar.completed == len(data) and not bar.closed  # caller's bar
    # The size probe (Range: bytes=0-0) costs one byte when the size is not given.
    assert server.bytes_sent("/blob") == len(data) + (0 if give_size else 1)


def test_without_expectations_learns_size_and_hash(server: FileServer, tmp_path: Path) -> None:
    data = payload(123_457)
    server.add_file("/blob", data)
    result = download(server.url("/blob"), tmp_path / "f")
    assert (result.size, result.sha256, result.fetched) == (len(data), sha(data), len(data))


def test_multipart(server: FileServer, tmp_path: Path, small_parts: None) -> None:
    data = payload(8 * MiB + 12345)
    server.add_file("/blob", data)
    dest = tmp_path / "big.bin"
    result = download(server.url("/blob"), dest, sha256=sha(data), connections=4)
    assert dest.read_bytes() == data
    assert result.fetched == len(data)
    ranges = range_requests(server, "/blob")
    assert ranges[0] == "bytes=0-0"  # the probe
    assert ranges[1] == "bytes=0-1048575"  # one part until a 206 proves ranges work
    # The requests tile the file: 1 MiB parts, neighbours merged into one request once a
    # connection proved fast (on loopback, always).
    spans = sorted(tuple(int(n) for n in r.removeprefix("bytes=").split("-")) for r in ranges[1:])
    assert spans[0][0] == 0 and spans[-1][1] == len(data) - 1
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(spans))
    assert all((end + 1) % MiB == 0 or end == len(data) - 1 for _start, end in spans)
    assert len(spans) < 9
    assert server.bytes_sent("/blob") == len(data) + 1
    assert leftovers(dest) == []


def test_empty_file(server: FileServer, tmp_path: Path) -> None:
    server.add_file("/empty", b"")
    result = download(server.url("/empty"), tmp_path / "empty", sha256=sha(b""))
    assert result.size == 0 and result.sha256 == sha(b"") and (tmp_path / "empty").read_bytes() == b""


def test_unknown_length_without_ranges(server: FileServer, tmp_path: Path) -> None:
    """A chunked 200 (no Content-Length, no Range support) is streamed to its end."""
    data = payload(700_000)

    def chunked(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for i in range(0, len(data), 100_000):
            piece = data[i : i + 100_000]
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        handler.wfile.write(b"0\r\n\r\n")

    server.add_route("/chunked", chunked)
    result = download(server.url("/chunked"), tmp_path / "f", sha256=sha(data))
    assert result.size == len(data) and (tmp_path / "f").read_bytes() == data


def test_custom_partial_path(server: FileServer, tmp_path: Path) -> None:
    data = payload(50_000)
    server.add_file("/blob", data)
    dest = tmp_path / "blobs" / "sha256-abc"
    partial = dest.with_name("sha256-abc-partial")
    download(server.url("/blob"), dest, sha256=sha(data), partial=partial)
    assert dest.read_bytes() == data and leftovers(dest) == []


def test_import_does_not_load_httpx() -> None:
    code = "import sys, hanzo_cli.download; sys.exit('httpx' in sys.modules or 'tqdm' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT))
        ).returncode
        == 0
    )


def test_rejects_malformed_sha256(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        download("http://127.0.0.1:9/x", tmp_path / "f", sha256="abc")


# --- already there ----------------------------------------------------------------------------------


def test_already_present_is_not_fetched(server: FileServer, tmp_path: Path) -> None:
    data = payload(200_000)
    server.add_file("/blob", data)
    dest = tmp_path / "f"
    download(server.url("/blob"), dest, size=len(data), sha256=sha(data))
    server.reset_counters()
    bar = RecordingBar()
    result = download(server.url("/blob"), dest, size=len(data), sha256=sha(data), bar=bar)
    assert result.fetched == 0 and result.sha256 == sha(data) and not result.resumed
    assert server.requests == []
    assert bar.completed == len(data)
    # Without expectations an existing file is trusted too (files only arrive by verified rename).
    assert download(server.url("/blob"), dest).fetched == 0
    assert server.requests == []


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_existing_corrupt_dest_is_replaced(server: FileServer, tmp_path: Path, damage: str) -> None:
    data = payload(200_000)
    server.add_file("/blob", data)
    dest = tmp_path / "f"
    if damage == "truncated":
        dest.write_bytes(data[:1000])
    else:
        dest.write_bytes(b"X" + data[1:])
    result = download(server.url("/blob"), dest, size=len(data), sha256=sha(data))
    assert result.fetched == len(data) and dest.read_bytes() == data


def test_complete_partial_makes_no_request(server: FileServer, tmp_path: Path) -> None:
    """A partial whose state says complete is verified and renamed without asking the server,
    which (like the CNCF registry) would answer 416 with a bogus Content-Length."""
    data = payload(300_000)
    server.add_file("/blob", data, status=416)
    dest = tmp_path / "f"
    partial = tmp_path / "f.partial"
    partial.write_bytes(data)
    state = {"version": 1, "size": len(data), "sha256": sha(data), "parts": [[0, len(data), len(data)]]}
    (tmp_path / "f.partial.json").write_text(json.dumps(state))
    result = download(server.url("/blob"), dest, size=len(data), sha256=sha(data))
    assert result.fetched == 0 and result.resumed and dest.read_bytes() == data
    assert server.requests == []
    assert leftovers(dest) == []


def test_416_for_an_incomplete_part_restarts_from_zero(server: FileServer, tmp_path: Path) -> None:
    data = payload(400_000)
    entry = server.add_file("/blob", data)
    answered_416: list[str] = []

    def once_416(handler: Handler) -> None:
        rng = handler.headers.get("Range", "")
        if rng and not rng.startswith("bytes=0-") and not answered_416:
            answered_416.append(rng)
            handler.send_response(416)
            handler.send_header("Content-Range", "bytes */100")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.serve_file(entry)

    server.add_route("/blob", once_416)
    # A state that claims half of the file (as an interrupted run would leave).
    partial = tmp_path / "f.partial"
    half = len(data) // 2
    partial.write_bytes(data[:half] + bytes(len(data) - half))
    state = {"version": 1, "size": len(data), "sha256": None, "parts": [[0, len(data), half]]}
    (tmp_path / "f.partial.json").write_text(json.dumps(state))
    result = download(server.url("/blob"), tmp_path / "f", size=len(data), sha256=sha(data))
    assert answered_416 == [f"bytes={half}-{len(data) - 1}"]
    assert result.sha256 == sha(data) and not result.resumed
    assert (tmp_path / "f").read_bytes() == data


# --- integrity --------------------------------------------------------------------------------------


@pytest.mark.parametrize("multipart", [False, True])
def test_corrupt_bytes_raise_and_leave_nothing(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, multipart: bool
) -> None:
    if multipart:
        monkeypatch.setattr(plan, "MULTIPART_THRESHOLD", 1 * MiB)
        monkeypatch.setattr(plan, "MIN_PART_SIZE", 1 * MiB)
    data = payload(3 * MiB)
    server.add_file("/blob", data, corrupt_offset=2 * MiB + 17)
    dest = tmp_path / "f"
    with pytest.raises(
        IntegrityError, match=r"sha256 mismatch for f: expected [0-9a-f]{64}, got [0-9a-f]{64}"
    ):
        download(server.url("/blob"), dest, sha256=sha(data), connections=3)
    assert not dest.exists()
    assert leftovers(dest) == ["f.partial.lock"]  # no partial, no state


def test_server_size_differs_from_expected(server: FileServer, tmp_path: Path) -> None:
    data = payload(100_000)
    server.add_file("/blob", data)
    dest = tmp_path / "f"
    with pytest.raises(IntegrityError, match="size mismatch"):
        download(server.url("/blob"), dest, size=len(data) + 5)
    assert leftovers(dest) == [] and not dest.exists()  # no sha256: a private partial, removed


# --- transient failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("give_size", [True, False])
def test_5xx_then_success(server: FileServer, tmp_path: Path, give_size: bool) -> None:
    data = payload(100_000)
    server.add_file("/blob", data, fail_times=3, fail_status=503)
    result = download(
        server.url("/blob"), tmp_path / "f", size=len(data) if give_size else None, sha256=sha(data)
    )
    assert result.sha256 == sha(data)
    assert server.file("/blob").requests == 4 + (0 if give_size else 1)


def test_429_with_retry_after_then_success(server: FileServer, tmp_path: Path) -> None:
    data = payload(10_000)
    server.add_file("/blob", data, fail_times=1, fail_status=429, retry_after=0.2)
    start = time.monotonic()
    download(server.url("/blob"), tmp_path / "f", size=len(data), sha256=sha(data))
    assert time.monotonic() - start >= 0.2


def test_retries_used_up_keeps_partial(server: FileServer, tmp_path: Path) -> None:
    data = payload(2 * MiB)
    # The first response breaks after 1 MiB, then the server fails for good.
    server.add_file("/blob", data, reset_after=1 * MiB)
    dest = tmp_path / "f"

    calls: list[int] = []

    def break_after_first(handler: Handler) -> None:
        calls.append(1)
        if len(calls) == 1:
            handler.serve_file(server.file("/blob"))
        else:
            handler.send_status(502)

    server.add_route("/blob", break_after_first)
    with pytest.raises(DownloadError, match=r"after 2 retries: HTTP 502.*running it again resumes"):
        download(server.url("/blob"), dest, size=len(data), sha256=sha(data), retries=2)
    state = json.loads((tmp_path / "f.partial.json").read_text())
    assert state["parts"][0][2] > 0  # what arrived is kept for the next run
    assert (tmp_path / "f.partial").exists()
    server.remove("/blob")
    server.add_file("/blob", data)
    result = download(server.url("/blob"), dest, size=len(data), sha256=sha(data))
    assert result.resumed and result.fetched < len(data) and dest.read_bytes() == data


@pytest.mark.parametrize("multipart", [False, True])
def test_connection_reset_mid_body(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, multipart: bool
) -> None:
    if multipart:
        monkeypatch.setattr(plan, "MULTIPART_THRESHOLD", 1 * MiB)
        monkeypatch.setattr(plan, "MIN_PART_SIZE", 1 * MiB)
    data = payload(4 * MiB)
    server.add_file("/blob", data, reset_after=300_000, reset_times=3)
    result = download(server.url("/blob"), tmp_path / "f", sha256=sha(data), connections=2)
    assert result.sha256 == sha(data) and (tmp_path / "f").read_bytes() == data
    assert result.fetched >= len(data)
    assert server.bytes_sent("/blob") < 1.5 * len(data)  # resumed by Range, not restarted


def test_stall_is_retried(server: FileServer, tmp_path: Path) -> None:
    data = payload(1 * MiB)
    server.add_file("/blob", data, stall_after=256 * 1024, stall_seconds=10)
    start = time.monotonic()
    result = download(server.url("/blob"), tmp_path / "f", sha256=sha(data), stall_timeout=0.5)
    assert result.sha256 == sha(data)
    assert time.monotonic() - start < 5
    assert len(range_requests(server, "/blob")) == 3  # probe, stalled request, resumed request


def test_server_that_caps_ranges(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 206 with a shorter range than asked for is fine: the rest is asked for at once."""
    monkeypatch.setenv("HANZO_DOWNLOAD_BACKOFF", "5")  # a retry would show in the elapsed time
    data = payload(1 * MiB)
    cap = 300_000

    def capped(handler: Handler) -> None:
        first = int(handler.headers["Range"].split("=")[1].split("-")[0])
        last = min(first + cap, len(data)) - 1
        body = data[first : last + 1]
        handler.send_bytes(body, 206, {"Content-Range": f"bytes {first}-{last}/{len(data)}"})

    server.add_route("/blob", capped)
    start = time.monotonic()
    result = download(server.url("/blob"), tmp_path / "f", size=len(data), sha256=sha(data))
    assert result.sha256 == sha(data) and time.monotonic() - start < 4
    assert len(range_requests(server, "/blob")) == 4


# --- servers without Range support -----------------------------------------------------------------


@pytest.mark.parametrize("give_size", [True, False])
def test_200_for_range_fresh(server: FileServer, tmp_path: Path, small_parts: None, give_size: bool) -> None:
    data = payload(5 * MiB + 3)
    server.add_file("/blob", data, ignore_range=True)
    result = download(
        server.url("/blob"),
        tmp_path / "f",
        size=len(data) if give_size else None,
        sha256=sha(data),
        connections=4,
    )
    assert (tmp_path / "f").read_bytes() == data and result.fetched == len(data)
    # The 200 that answered the first ranged request was used as the body: nothing was thrown away.
    assert server.bytes_sent("/blob") == len(data)
    assert server.file("/blob").requests == 1


def test_200_for_range_on_resume_restarts_from_zero(server: FileServer, tmp_path: Path) -> None:
    data = payload(2 * MiB)
    server.add_file("/blob", data, throttle=4 * MiB)
    dest = tmp_path / "f"
    with pytest.raises(KeyboardInterrupt):
        download(server.url("/blob"), dest, sha256=sha(data), bar=InterruptingBar(after=200_000))
    assert json.loads((tmp_path / "f.partial.json").read_text())["parts"][0][2] > 0
    # The server (or a mirror) no longer honours Range: splicing would corrupt, so start over.
    server.remove("/blob")
    server.add_file("/blob", data, ignore_range=True)
    result = download(server.url("/blob"), dest, sha256=sha(data))
    assert dest.read_bytes() == data and not result.resumed and result.fetched >= len(data)
    assert leftovers(dest) == []


def test_reset_on_a_server_without_ranges_restarts_from_zero(server: FileServer, tmp_path: Path) -> None:
    data = payload(1 * MiB)
    server.add_file("/blob", data, ignore_range=True, reset_after=300_000, reset_times=2)
    result = download(server.url("/blob"), tmp_path / "f", sha256=sha(data))
    assert (tmp_path / "f").read_bytes() == data
    assert result.fetched >= len(data) + 2 * 300_000 - 2 * 256 * 1024  # two lost beginnings


# --- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 410])
def test_not_found(server: FileServer, tmp_path: Path, status: int) -> None:
    server.add_file("/blob", b"x", status=status)
    dest = tmp_path / "f"
    with pytest.raises(RemoteFileNotFoundError, match=f"HTTP {status}") as raised:
        download(server.url("/blob") + "?X-Amz-Signature=secret", dest)
    # A missing file is a broken source, never "this provider has no such model".
    assert not isinstance(raised.value, ModelNotFoundError)
    assert server.file("/blob").requests == 1  # no retries for a 404
    assert not dest.exists() and leftovers(dest) == []  # no sha256: nothing shared


def test_unauthorized_fails_at_once_without_leaking_query(server: FileServer, tmp_path: Path) -> None:
    data = payload(10_000)
    server.add_file("/blob", data, require_headers={"Authorization": "Bearer good"})
    url = server.url("/blob") + "?token=secret"
    with pytest.raises(DownloadError) as info:
        download(url, tmp_path / "f", size=len(data))
    message = str(info.value)
    assert "HTTP 401" in message and server.url("/blob") in message and "secret" not in message
    assert "\n" not in message
    assert server.file("/blob").requests == 1
    result = download(url, tmp_path / "f", size=len(data), headers={"Authorization": "Bearer good"})
    assert result.sha256 == sha(data)


def test_redirect_followed_and_authorization_not_forwarded_cross_host(
    server: FileServer, tmp_path: Path
) -> None:
    data = payload(200_000)
    server.add_file("/cdn/blob", data)
    # Registry on 127.0.0.1 sends the client to a "CDN" on another host name (localhost).
    server.add_file("/v2/blobs/x", b"", redirect_to=server.url("/cdn/blob?sig=1", host="localhost"))
    server.add_file("/same-host", b"", redirect_to="/cdn/blob")
    headers = {"Authorization": "Bearer registry-token"}
    result = download(server.url("/v2/blobs/x"), tmp_path / "f", sha256=sha(data), headers=headers)
    assert result.sha256 == sha(data)
    for r in server.requests_for("/v2/blobs/x"):
        assert r.headers["authorization"] == "Bearer registry-token"
    cdn = server.requests_for("/cdn/blob")
    assert cdn and all("authorization" not in r.headers for r in cdn)
    assert all(r.headers["host"].startswith("localhost:") for r in cdn)
    # Every request (probe and body) went through the registry URL again: CDN links expire.
    assert len(server.requests_for("/v2/blobs/x")) == len(cdn) == 2

    server.reset_counters()
    download(server.url("/same-host"), tmp_path / "g", sha256=sha(data), headers=headers)
    assert all(
        r.headers["authorization"] == "Bearer registry-token" for r in server.requests_for("/cdn/blob")
    )


# --- disk -------------------------------------------------------------------------------------------


def test_disk_precheck(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = payload(3 * MiB)
    server.add_file("/blob", data)
    monkeypatch.setattr(
        shutil, "disk_usage", lambda _p: types.SimpleNamespace(total=10**9, used=0, free=1_000_000)
    )
    with pytest.raises(DiskFullError, match=r"need 3\.1 MB, have 1\.0 MB free"):
        download(server.url("/blob"), tmp_path / "f", size=len(data))
    assert server.bytes_sent("/blob") == 0 and not (tmp_path / "f").exists()


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    if sys.platform != "linux" or shutil.which("mount") is None:
        return False
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    return proc.returncode == 0


@pytest.mark.parametrize("how", ["tmpfs", "pwrite"])
def test_enospc_while_writing(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    data = payload(3 * MiB)
    server.add_file("/blob", data)
    # Pass the pre-check: this is about the disk filling up during the download.
    real_usage = shutil.disk_usage
    monkeypatch.setattr(
        shutil, "disk_usage", lambda _p: types.SimpleNamespace(total=10**12, used=0, free=10**12)
    )
    if how == "tmpfs":
        where = tmp_path / "mnt"
        if not _mount_tmpfs(where, "1m"):
            pytest.skip("cannot mount a tmpfs here")
    else:
        where = tmp_path / "dir"
        real_pwrite = os.pwrite
        written = [0]

        def pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
            if written[0] >= 1 * MiB:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written[0] += len(data)
            return real_pwrite(fd, data, offset)

        monkeypatch.setattr(os, "pwrite", pwrite)
    try:
        dest = where / "f"
        with pytest.raises(DiskFullError, match="disk full"):
            download(server.url("/blob"), dest, size=len(data), sha256=sha(data))
        assert (where / "f.partial").exists() and not dest.exists()
        if how == "pwrite":
            assert json.loads((where / "f.partial.json").read_text())["parts"][0][2] > 0
            monkeypatch.setattr(os, "pwrite", real_pwrite)
            monkeypatch.setattr(shutil, "disk_usage", real_usage)
            result = download(server.url("/blob"), dest, size=len(data), sha256=sha(data))
            assert result.resumed and result.fetched < len(data) and dest.read_bytes() == data
    finally:
        if how == "tmpfs":
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


# --- interruption and resume ------------------------------------------------------------------------


@pytest.mark.parametrize("multipart", [False, True])
def test_ctrl_c_leaves_resumable_partial(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, multipart: bool
) -> None:
    if multipart:
        monkeypatch.setattr(plan, "MULTIPART_THRESHOLD", 1 * MiB)
        monkeypatch.setattr(plan, "MIN_PART_SIZE", 1 * MiB)
    data = payload(4 * MiB)
    server.add_file("/blob", data, throttle=4 * MiB)
    dest = tmp_path / "f"
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        download(server.url("/blob"), dest, sha256=sha(data), connections=2, bar=InterruptingBar(after=MiB))
    assert time.monotonic() - start < 10
    assert not dest.exists()
    state = json.loads((tmp_path / "f.partial.json").read_text())
    claimed = sum(done for _s, _e, done in state["parts"])
    assert MiB <= claimed < len(data)  # stopped promptly, not after the file finished
    # Whatever the state claims is really on disk.
    partial = (tmp_path / "f.partial").read_bytes()
    for s, _e, done in state["parts"]:
        assert partial[s : s + done] == data[s : s + done]

    server.file("/blob").faults.throttle = None
    bar = RecordingBar()
    result = download(server.url("/blob"), dest, sha256=sha(data), connections=2, bar=bar)
    assert result.resumed and result.fetched == len(data) - claimed
    assert dest.read_bytes() == data and leftovers(dest) == []
    assert bar.completed == len(data)
    assert server.bytes_sent("/blob") <= 1.05 * len(data)


def test_sigint_while_stalled_stops_promptly(server: FileServer, tmp_path: Path) -> None:
    """Ctrl-C reaches the main thread even while every worker is blocked in recv."""
    data = payload(2 * MiB)
    server.add_file("/blob", data, stall_after=512 * 1024, stall_seconds=20)
    timer = threading.Timer(0.7, os.kill, (os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            download(server.url("/blob"), tmp_path / "f", sha256=sha(data), stall_timeout=30)
    finally:
        timer.cancel()
    assert time.monotonic() - start < 4.5  # not the 30 s stall timeout, nor the 5 s join limit
    state = json.loads((tmp_path / "f.partial.json").read_text())
    # Everything received is claimed: the stalled part's 512 KiB, and any second half another
    # connection took over (work stealing) and finished.
    parts = state["parts"]
    assert parts[0][0] == 0 and parts[0][2] == 512 * 1024 and parts[-1][1] == len(data)
    assert all(parts[i][1] == parts[i + 1][0] for i in range(len(parts) - 1))
    assert all(done in (0, end - start) for start, end, done in parts[1:])


def test_part_plan() -> None:
    GiB = 1024 * MiB
    assert len(plan.plan_parts(10 * MiB, 4, True)) == 1
    assert len(plan.plan_parts(1 * GiB, 4, False)) == 1  # no Range support: one stream
    assert len(plan.plan_parts(1 * GiB, 1, True)) == 1
    parts = plan.plan_parts(1 * GiB, 4, True)
    assert len(parts) == GiB // plan.MIN_PART_SIZE
    big = plan.plan_parts(50 * GiB + 1, 8, True)
    assert len(big) <= plan.MAX_PARTS + 1 and big[-1].end == 50 * GiB + 1
    assert all(big[i].end == big[i + 1].start for i in range(len(big) - 1))


def test_connections_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert policy.resolve_connections(None) == policy.DEFAULT_CONNECTIONS
    monkeypatch.setenv("HANZO_DOWNLOAD_CONNECTIONS", "2")
    assert policy.resolve_connections(None) == 2
    assert policy.resolve_connections(8) == 8
    assert policy.resolve_connections(0) == 1


_CHILD = """
import sys
from pathlib import Path
import hanzo_cli.download as dl
import hanzo_cli.download.state as plan
if sys.argv[4] == "multi":
    plan.MULTIPART_THRESHOLD = plan.MIN_PART_SIZE = 4 << 20
dl.download(sys.argv[1], Path(sys.argv[2]), sha256=sys.argv[3], connections=int(sys.argv[5]))
"""


@pytest.mark.parametrize("layout", ["single", "multi"])
def test_kill_9_then_resume_in_new_process(server: FileServer, tmp_path: Path, layout: str) -> None:
    size = 64 * MiB  # 1% of it (the state-save interval) is above the 512 KiB minimum
    data = payload(size, seed=1)
    digest = sha(data)
    # Throttled per response: 16 MiB/s for one stream, 4 x 4 MiB/s for four connections.
    server.add_file("/blob", data, throttle=16 * MiB if layout == "single" else 4 * MiB)
    connections = 1 if layout == "single" else 4
    dest = tmp_path / "f"
    env = dict(os.environ, PYTHONPATH=str(ROOT), HANZO_PROGRESS="0")
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, server.url("/blob"), str(dest), digest, layout, str(connections)],
        env=env,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 20
        while server.bytes_sent("/blob") < 0.3 * size:
            assert proc.poll() is None, "the download finished or failed before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not dest.exists()
    sent_before = server.bytes_sent("/blob")
    assert sent_before < size

    server.file("/blob").faults.throttle = None
    result = download(server.url("/blob"), dest, sha256=digest, connections=4)
    assert result.resumed and result.sha256 == digest
    assert dest.read_bytes() == data
    total = server.bytes_sent("/blob")
    # Re-fetched: at most the state-save interval (1%) and what was in flight, here up to one
    # receive block (1 MiB) per connection.
    bound = 1.05 * size + connections * MiB
    assert total <= bound, f"sent {sent_before} before the kill, {total} in all"
    assert leftovers(dest) == []


def test_concurrent_pulls_download_once(server: FileServer, tmp_path: Path) -> None:
    data = payload(2 * MiB)
    server.add_file("/blob", data, throttle=8 * MiB)
    dest = tmp_path / "f"
    results: list[DownloadResult] = []
    errors: list[BaseException] = []

    def pull() -> None:
        try:
            results.append(download(server.url("/blob"), dest, sha256=sha(data)))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=pull) for _ in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(r.fetched for r in results) == [0, 0, len(data)]
    assert all(r.sha256 == sha(data) for r in results)
    # Once, plus the one-byte size probe, plus what was in flight when a part was split (work
    # stealing closes the first half's connection at the split point).
    assert server.bytes_sent("/blob") <= 1.05 * len(data) + 1
    assert leftovers(dest) == []


def test_concurrent_processes_download_once(server: FileServer, tmp_path: Path) -> None:
    data = payload(4 * MiB)
    server.add_file("/blob", data, throttle=8 * MiB)
    dest = tmp_path / "f"
    script = (
        "import sys, json; from pathlib import Path; from hanzo_cli.download import download; "
        "r = download(sys.argv[1], Path(sys.argv[2]), sha256=sys.argv[3]); print(r.fetched)"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), HANZO_PROGRESS="0")
    args = [sys.executable, "-c", script, server.url("/blob"), str(dest), sha(data)]
    procs = [subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=30)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert sorted(int(o) for o in outs) == [0, len(data)]
    assert server.bytes_sent("/blob") <= 1.05 * len(data) + 2  # plus two probes and split overlaps
    assert dest.read_bytes() == data


# --- without a sha256, every process has a partial of its own --------------------------------------


def test_without_sha256_each_pull_has_a_partial_of_its_own(server: FileServer, tmp_path: Path) -> None:
    """Nothing could tell a file spliced from two processes' bytes from a good one, and flock is
    not reliable on every file system: no sharing, no lock, and nothing left behind."""
    data = payload(2 * MiB)
    server.add_file("/blob", data, throttle=8 * MiB)
    dest = tmp_path / "f"
    seen: set[str] = set()
    results: list[DownloadResult] = []

    class Watching(RecordingBar):
        def update(self, n: int) -> None:
            super().update(n)
            seen.update(name for name in leftovers(dest) if not name.endswith((".json", ".tmp")))

    threads = [
        threading.Thread(target=lambda: results.append(download(server.url("/blob"), dest, bar=Watching())))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [r.sha256 for r in results] == [sha(data)] * 2 and dest.read_bytes() == data
    assert len(seen) == 2 and all(".partial.private-" in name for name in seen), seen
    assert server.bytes_sent("/blob") >= 2 * len(data)  # each pull fetched its own copy
    assert leftovers(dest) == []


def test_without_sha256_an_interrupted_pull_leaves_nothing(server: FileServer, tmp_path: Path) -> None:
    data = payload(2 * MiB)
    server.add_file("/blob", data, throttle=4 * MiB)
    dest = tmp_path / "f"
    with pytest.raises(KeyboardInterrupt):
        download(server.url("/blob"), dest, bar=InterruptingBar(after=200_000))
    assert leftovers(dest) == [] and not dest.exists()


def test_stale_private_partials_of_dead_processes_are_removed(server: FileServer, tmp_path: Path) -> None:
    import socket

    data = payload(100_000)
    server.add_file("/blob", data)
    dest = tmp_path / "f"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    host = socket.gethostname()
    stale = [
        tmp_path / f"f.partial.private-{host}-{dead.stdout.strip()}-0",
        tmp_path / f"f.partial.private-{host}-{dead.stdout.strip()}-0.json",
    ]
    alive = tmp_path / f"f.partial.private-{host}-{os.getppid()}-0"  # a live process's: kept
    remote = tmp_path / "f.partial.private-elsewhere-1-0"  # another host's: cannot be checked
    for path in [*stale, alive, remote]:
        path.write_bytes(b"x")
    assert set(dl.side_files(dest)) >= {*stale, alive, remote}
    download(server.url("/blob"), dest)
    assert leftovers(dest) == sorted([alive.name, remote.name])


def test_the_engine_knows_nothing_of_the_cli(server: FileServer, tmp_path: Path) -> None:
    """Progress and messages reach the caller through what it passes (bar=, notify=): importing
    the engine loads no Click, and a download with both given never loads hanzo_cli.output."""
    data = payload(300_000)
    server.add_file("/blob", data)
    code = (
        "import sys; from pathlib import Path\n"
        "import hanzo_cli.download as dl, hanzo_cli.download.engine, hanzo_cli.download.transfer\n"
        "print('click' in sys.modules)\n"
        "class Bar:\n"
        "    def update(self, n): pass\n"
        "    def set_total(self, t): pass\n"
        "    def set_completed(self, c): pass\n"
        "    def close(self): pass\n"
        "lines = []\n"
        "dest = Path(sys.argv[2])\n"
        "dest.write_bytes(b'stale')\n"
        "dl.download(sys.argv[1], dest, size=300000, bar=Bar(), notify=lines.append)\n"
        "print('hanzo_cli.output' in sys.modules, len(lines))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", code, server.url("/blob"), str(tmp_path / "f")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    # (httpx itself imports click, so that is checked before the download.) The "existing file has
    # 5 bytes" line went to notify.
    assert proc.stdout.split() == ["False", "False", "1"]
    assert proc.stderr == ""


# --- the test server itself -------------------------------------------------------------------------


def test_fileserver_range_semantics(server: FileServer) -> None:
    import httpx

    data = payload(1000)
    server.add_file("/f", data, headers={"ETag": '"abc"'})
    server.add_route(
        "/api/", lambda h: h.send_bytes(h.path_only.encode(), content_type="text/plain"), prefix=True
    )
    with httpx.Client() as client:
        r = client.get(server.url("/f"), headers={"Range": "bytes=10-19"})
        assert r.status_code == 206 and r.content == data[10:20]
        assert r.headers["content-range"] == "bytes 10-19/1000" and r.headers["accept-ranges"] == "bytes"
        assert r.headers["etag"] == '"abc"'
        r = client.get(server.url("/f"), headers={"Range": "bytes=-5"})
        assert r.status_code == 206 and r.content == data[-5:]
        r = client.get(server.url("/f"), headers={"Range": "bytes=990-"})
        assert r.status_code == 206 and r.content == data[990:]
        r = client.get(server.url("/f"), headers={"Range": "bytes=1000-"})
        assert r.status_code == 416 and r.headers["content-range"] == "bytes */1000"
        r = client.head(server.url("/f"))
        assert r.status_code == 200 and r.headers["content-length"] == "1000" and r.content == b""
        assert client.get(server.url("/f")).content == data
        assert client.get(server.url("/missing")).status_code == 404
        assert client.get(server.url("/api/models/x")).text == "/api/models/x"
    assert server.bytes_sent("/f") == 10 + 5 + 10 + 1000
    assert [r.method for r in server.requests_for("/f")] == ["GET"] * 4 + ["HEAD", "GET"]
