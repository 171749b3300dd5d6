"""The download engine: probe, plan or resume, transfer, verify, and the atomic rename.

It reports progress to the bar it is given and informational lines to the job's ``notify``; it
draws nothing itself and imports no output module.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hanzo_cli.download import state as st
from hanzo_cli.download.attempt import Attempt
from hanzo_cli.download.hashing import hash_file
from hanzo_cli.download.job import Job
from hanzo_cli.download.policy import (
    Restart,
    Retryable,
    backoff,
    content_length,
    is_disk_full,
    new_client,
    parse_content_range,
    retry_reason,
)
from hanzo_cli.download.result import DownloadResult, Notify
from hanzo_cli.download.transfer import Transfer
from hanzo_cli.errors import DiskFullError, DownloadError, IntegrityError
from hanzo_cli.fsutil import fsync_dir
from hanzo_cli.units import human_size

if TYPE_CHECKING:
    import httpx

    from hanzo_cli.output import ProgressBar


def existing(
    dest: Path, size: int | None, sha256: str | None, bar: ProgressBar | None, label: str, notify: Notify
) -> DownloadResult | None:
    """A result for a complete ``dest``, or None when it is absent or corrupt.

    Files only reach ``dest`` through a verified rename, so an existing file with no expectations
    to check is taken as complete. One whose size or sha256 differs from the expected values is
    treated as corrupt (truncated by hand, bit rot, an older version): it is downloaded again into
    the partial and atomically replaced, rather than silently kept or deleted before a good copy
    exists.
    """
    try:
        stat = dest.stat()
    except FileNotFoundError:
        return None
    if size is not None and stat.st_size != size:
        notify(f"{label}: existing file has {stat.st_size} bytes, expected {size}; downloading again")
        return None
    actual_size, digest = hash_file(dest)
    if sha256 is not None and digest != sha256:
        notify(f"{label}: existing file does not match its sha256; downloading again")
        return None
    if bar is not None:
        bar.set_total(actual_size)
        bar.set_completed(actual_size)
    return DownloadResult(path=dest, size=actual_size, sha256=digest, fetched=0, resumed=False)


class _Probe:
    def __init__(self, size: int | None, ranges: bool, response: httpx.Response | None) -> None:
        self.size = size
        self.ranges = ranges
        self.response = response  # an open 200 response to reuse as the body, if any


class Downloader:
    """Runs one job to a verified ``dest``, in as many attempts as restarts need."""

    def __init__(self, job: Job, bar: ProgressBar) -> None:
        self.job = job
        self.bar = bar

    def run(self) -> DownloadResult:
        job = self.job
        own_client = job.client is None
        if job.client is None:
            job.client = new_client(job.stall_timeout)
        restarts = 0
        try:
            while True:
                try:
                    return self._attempt()
                except Restart as exc:
                    # Bounded so that a server that keeps changing its mind cannot loop us forever.
                    restarts += 1
                    if restarts > max(2, job.retries):
                        raise DownloadError(
                            f"download of {job.label} failed: {exc} ({job.safe_url}); "
                            f"gave up after {restarts - 1} restarts"
                        ) from None
                    if exc.no_ranges:
                        job.ranges_unsupported = True
                    job.resumed = False
                    st.discard_partial(job.partial)
                    if restarts > 1:
                        time.sleep(backoff(restarts - 1))
                except IntegrityError:
                    st.discard_partial(job.partial)  # wrong bytes are worth nothing, not even for resuming
                    raise
        finally:
            if own_client:
                job.client.close()
                job.client = None

    def _attempt(self) -> DownloadResult:
        job, bar = self.job, self.bar
        probe: _Probe | None = None
        if job.expected_size is None:
            probe = self._probe()
            job.size = probe.size
            if not probe.ranges:
                job.ranges_unsupported = True
        else:
            job.size = job.expected_size
        first_response = probe.response if probe is not None else None
        try:
            if job.size is not None:
                bar.set_total(job.size)
            ranges = not job.ranges_unsupported
            parts = (
                st.load_state(job.partial, job.size, job.expected_sha)
                if ranges and job.size is not None
                else None
            )
            fresh = parts is None
            if parts is None:
                parts = st.plan_parts(job.size, job.connections, ranges)
            else:
                job.resumed = any(p.done for p in parts)
            ctx = Attempt(job, parts)
            self._check_disk(parts)
            if fresh:
                try:
                    st.create_partial(job.partial, job.size)
                except OSError as exc:
                    if is_disk_full(exc):
                        raise job.disk_full_error(exc) from None
                    raise
            ctx.save_state()
            already = ctx.completed()
            bar.set_completed(already)
            if ctx.pending:
                response, first_response = first_response, None
                Transfer(ctx, bar).run(already, response)
        finally:
            if first_response is not None:
                first_response.close()
        return self._finish(ctx)

    # --- learning the size ----------------------------------------------------------------------

    def _probe(self) -> _Probe:
        """Learn the size and Range support with ``Range: bytes=0-0``."""
        job = self.job
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                if job.ranges_unsupported:
                    # Known not to do ranges: the plain GET is the body itself.
                    response = job.send(None, None)
                    if response.status_code != 200:
                        try:
                            job.fail_status(response)
                        finally:
                            response.close()
                    return _Probe(content_length(response), False, response)
                return self._interpret_probe(job.send(0, 1))
            except Exception as exc:  # noqa: BLE001 - retry_reason re-raises the rest
                reason, retry_after = retry_reason(exc)
            attempt += 1
            if attempt > job.retries:
                raise DownloadError(
                    f"download of {job.label} failed after {job.retries} retries: {reason} ({job.safe_url})"
                )
            time.sleep(backoff(attempt, retry_after))

    def _interpret_probe(self, response: httpx.Response) -> _Probe:
        job = self.job
        status = response.status_code
        if status == 206:
            try:
                cr = parse_content_range(response.headers.get("Content-Range"))
                if (content_length(response) or 0) <= 64 * 1024:
                    response.read()  # one byte; lets the connection be reused
            finally:
                response.close()
            if cr is None or cr[0] != 0 or cr[2] is None:
                # A 206 without a usable total: do not trust this server's ranges.
                job.ranges_unsupported = True
                raise Retryable("unusable Content-Range in the answer to bytes=0-0")
            return _Probe(cr[2], True, None)
        if status == 200:
            # No Range support: this response is the whole body from byte 0; keep it open.
            return _Probe(content_length(response), False, response)
        if status == 416:
            content_range = response.headers.get("Content-Range", "")
            response.close()
            m = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", content_range)
            if m and int(m.group(1)) == 0:
                return _Probe(0, True, None)  # an empty file cannot satisfy bytes=0-0
            job.ranges_unsupported = True
            raise Retryable("HTTP 416 to bytes=0-0")
        try:
            job.fail_status(response)
        finally:
            response.close()

    # --- disk and completion --------------------------------------------------------------------

    def _check_disk(self, parts: list[st.Part]) -> None:
        need = sum(p.remaining() for p in parts)
        if need <= 0:
            return
        where = self.job.partial.parent
        free = shutil.disk_usage(where).free
        if need > free:
            raise DiskFullError(
                f"not enough disk space to download {self.job.label}: need {human_size(need)}, "
                f"have {human_size(free)} free in {where}"
            )

    def _finish(self, ctx: Attempt) -> DownloadResult:
        job = self.job
        hashed, digest = ctx.hasher.hashed, ctx.hasher.digest
        if digest is None:
            # Nothing was transferred in this attempt (the partial was already complete).
            hashed, digest = hash_file(job.partial)
        if job.size is None:
            # Unknown length: the body ended where it ended; drop any stale tail.
            os.truncate(job.partial, ctx.parts[-1].pos)
        actual = job.partial.stat().st_size
        expected = job.size if job.size is not None else hashed
        if actual != expected or hashed != actual:
            raise IntegrityError(f"size mismatch for {job.label}: expected {expected} bytes, got {actual}")
        if job.expected_sha is not None and digest != job.expected_sha:
            raise IntegrityError(
                f"sha256 mismatch for {job.label}: expected {job.expected_sha}, got {digest}"
            )
        # Durable before visible: the data, then the rename, then the directory entry.
        fd = os.open(job.partial, os.O_RDONLY | st.O_BINARY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(job.partial, job.dest)
        fsync_dir(job.dest.parent)
        with contextlib.suppress(FileNotFoundError):
            st.state_path(job.partial).unlink()
        return DownloadResult(
            path=job.dest, size=actual, sha256=digest, fetched=job.fetched, resumed=job.resumed
        )
