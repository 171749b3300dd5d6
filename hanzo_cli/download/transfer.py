"""The parallel transfer: ranged parts fetched by worker threads into a preallocated partial.

Workers take parts from the attempt (:mod:`.attempt`: file order, then work stealing), each
writing with ``os.pwrite`` at the part's offset; a hasher thread follows the contiguous completed
prefix; a saver thread writes the state file when the workers ask (every 1% of the file). The
caller's thread reports progress, starts workers as the connection target rises (:mod:`.ramp`)
and waits, so Ctrl-C reaches it promptly.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from hanzo_cli.download import state as st
from hanzo_cli.download.attempt import Attempt
from hanzo_cli.download.policy import (
    Restart,
    Retryable,
    abort_response,
    backoff,
    is_disk_full,
    parse_content_range,
)
from hanzo_cli.download.policy import content_length as _content_length
from hanzo_cli.download.policy import retry_reason as _retry_reason
from hanzo_cli.download.receive import RECV_BLOCK, RawBody, raw_body
from hanzo_cli.errors import DiskFullError, DownloadError
from hanzo_cli.units import human_size

if TYPE_CHECKING:
    import httpx

    from hanzo_cli.output import ProgressBar

#: How often the caller's thread wakes to report progress and adjust the connections (seconds).
POLL_INTERVAL = 0.05
#: Statuses that mean "fewer connections, please".
_THROTTLE_STATUSES = (429, 503)


def _thread(ctx: Attempt, name: str, target: Callable[..., None], *args: object) -> threading.Thread:
    """A daemon thread (one stuck in a syscall must not keep the CLI alive) whose exception
    stops the attempt and is re-raised by the caller's thread."""

    def run() -> None:
        try:
            target(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises
            ctx.record_error(exc)

    return threading.Thread(target=run, name=name, daemon=True)


class _Worker:
    """A worker thread and when it finished: set after its error (if any) is recorded, and it
    wakes the caller's thread, so the end of a small download is not a poll interval late."""

    def __init__(self, ctx: Attempt, index: int, target: Callable[..., None], *args: object) -> None:
        self.finished = threading.Event()

        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises
                ctx.record_error(exc)
            finally:
                self.finished.set()
                ctx.wake.set()

        self.thread = threading.Thread(target=run, name=f"hanzo-download-{index}", daemon=True)
        self.thread.start()


class Transfer:
    """Fetches the pending parts of one attempt and reports progress to ``bar``."""

    def __init__(self, ctx: Attempt, bar: ProgressBar) -> None:
        self.ctx = ctx
        self.job = ctx.job
        self.bar = bar
        self._local = threading.local()

    def run(self, already: int, first_response: httpx.Response | None) -> None:
        ctx, job = self.ctx, self.job
        if first_response is not None or len(ctx.pending) == 1:
            ctx.ranges_ok.set()  # nothing to protect: there is only one request to make
        workers: dict[int, _Worker] = {}
        hasher = _thread(ctx, "hanzo-hash", ctx.hasher.run)
        saver = _thread(ctx, "hanzo-state", self._saver)
        helpers = [hasher, saver]
        shown = already
        try:
            for t in helpers:
                t.start()
            while ctx.error is None:
                ctx.wake.clear()  # before looking: a worker finishing from now on wakes us
                # Until one 206 arrives, only worker 0 asks: a server that ignores Range would
                # send the whole file to every connection.
                wanted = ctx.ramp.target if ctx.ranges_ok.is_set() else 1
                for i in range(wanted):
                    if (i not in workers or workers[i].finished.is_set()) and ctx.has_work():
                        response, first_response = (first_response, None) if i == 0 else (None, None)
                        workers[i] = _Worker(ctx, i, self._worker, i, response)
                running = sum(not w.finished.is_set() for w in workers.values())
                if not running and not ctx.has_work():
                    break
                ctx.wake.wait(POLL_INTERVAL)
                shown = self._show_progress(shown)
                ctx.ramp.sample(time.monotonic(), shown - already, running)
            shown = self._show_progress(shown)
            if ctx.error is None and ctx.unfinished():
                # Cannot happen unless a code path above forgot to raise: keep what we have.
                ctx.record_error(DownloadError(f"download of {job.label} stopped early; run it again"))
            if ctx.error is None:
                ctx.workers_done.set()
                ctx.hash_wake.set()
                while hasher.is_alive():
                    hasher.join(POLL_INTERVAL)
            if ctx.error is None:
                ctx.close_state()
                saver.join()
        except BaseException:
            # Ctrl-C (or a failing progress bar): stop the workers, keep a resumable partial.
            self._stop([*(w.thread for w in workers.values()), *helpers])
            raise
        finally:
            if first_response is not None:
                first_response.close()
            with ctx.lock:
                job.fetched += ctx.fetched
                ctx.fetched = 0
        if ctx.error is not None:
            self._stop([*(w.thread for w in workers.values()), *helpers])
            raise ctx.error

    def _show_progress(self, shown: int) -> int:
        current = self.ctx.completed()
        if current != shown:
            self.bar.update(current - shown)
        return current

    def _stop(self, threads: list[threading.Thread]) -> None:
        """Cancel the threads promptly and leave a consistent, resumable state on disk."""
        ctx = self.ctx
        ctx.stop_threads()
        with ctx.lock:
            responses = list(ctx.active)
        for response in responses:
            abort_response(response)
        deadline = time.monotonic() + 5.0
        for t in threads:
            if t.ident is not None:
                t.join(max(0.0, deadline - time.monotonic()))
        if self.job.partial.exists():
            # Workers still stuck may write more later, but can no longer claim it.
            with contextlib.suppress(OSError, DiskFullError):
                ctx.save_state(final=True)
        with ctx.lock:
            ctx.state_closed = True

    def _saver(self) -> None:
        """Save the state when the workers ask (every 1%): a rename can take milliseconds on
        ext4, which the workers should spend receiving."""
        ctx = self.ctx
        while not (ctx.cancel.is_set() or ctx.state_closed):
            if ctx.save_wanted.wait(1.0):
                ctx.save_wanted.clear()
                if not (ctx.cancel.is_set() or ctx.state_closed):
                    ctx.save_state()

    def _worker(self, index: int, first_response: httpx.Response | None) -> None:
        ctx = self.ctx
        fd = -1
        try:
            fd = os.open(self.job.partial, os.O_WRONLY | st.O_BINARY)
            while not ctx.cancel.is_set():
                part = ctx.take(index)
                if part is None:
                    return
                response, first_response = first_response, None
                try:
                    self._fetch_part(fd, part, response, index)
                finally:
                    ctx.release(part, index)
        finally:
            if first_response is not None:
                first_response.close()
            if fd >= 0:
                os.close(fd)

    def _fetch_part(self, fd: int, part: st.Part, response: httpx.Response | None, index: int) -> None:
        ctx, job = self.ctx, self.job
        attempt = 0
        while not ctx.cancel.is_set() and not part.complete:
            start_pos = part.pos
            retry_after: float | None = None
            try:
                if response is None:
                    if job.ranges_unsupported:
                        response = job.send(None, None)
                    else:
                        response = job.send(part.pos, part.end)
                current, response = response, None
                self._stream(fd, part, current)
                if part.end is None or part.complete or ctx.cancel.is_set():
                    return  # (unknown size: the body ended where the file ends)
                if part.pos > start_pos and not job.ranges_unsupported:
                    # A complete response with a shorter range than asked for (some servers cap
                    # ranges): ask for the rest at once.
                    attempt = 0
                    continue
                raise Retryable(f"response ended at byte {part.pos} of {part.end}")
            except Exception as exc:  # noqa: BLE001 - _retry_reason re-raises the rest
                reason, retry_after = _retry_reason(exc)
                if isinstance(exc, Retryable) and exc.status in _THROTTLE_STATUSES:
                    with ctx.lock:
                        ctx.ramp.throttled(time.monotonic())
            finally:
                if response is not None:
                    response.close()
                    response = None
            if ctx.cancel.is_set():
                return
            if job.ranges_unsupported or part.end is None:
                # Without Range support the only way to go on is from byte 0.
                raise Restart(f"{reason}; the server cannot resume", no_ranges=True)
            if part.pos > start_pos:
                attempt = 0  # progress was made: the connection is flaky, not dead
            attempt += 1
            if attempt > job.retries:
                raise DownloadError(
                    f"download of {job.label} failed after {job.retries} retries: {reason} "
                    f"({job.safe_url}); {human_size(ctx.completed())} of {human_size(job.size)} "
                    "kept, running it again resumes"
                )
            ctx.cancel.wait(backoff(attempt, retry_after))
            if index >= ctx.ramp.target:
                return  # fewer connections now: the part goes back to the others

    def _check_response(self, part: st.Part, response: httpx.Response) -> None:
        """Accept ``response`` as the body of ``part``'s remaining bytes, or raise."""
        ctx, job = self.ctx, self.job
        status = response.status_code
        if status == 206 and not job.ranges_unsupported:
            cr = parse_content_range(response.headers.get("Content-Range"))
            if cr is None or cr[0] != part.pos:
                raise Restart("the server sent another range than the one asked for", no_ranges=True)
            total = cr[2]
            if total is not None and job.size is not None and total != job.size:
                job.size_changed(total)
            ctx.ranges_seen = True
            ctx.ranges_ok.set()
            return
        if status == 200:
            length = _content_length(response)
            if length is not None and job.size is not None and length != job.size:
                job.size_changed(length)
            if part.pos == 0 and self._collapse_to_one_part(part):
                return
            # A 200 answers a ranged request with the whole file: splicing it in would corrupt
            # the partial, so start over without ranges.
            raise Restart("the server ignored the Range header", no_ranges=True)
        if status == 416:
            # Only incomplete parts are requested (never one that is complete: some registries
            # answer those with a 416 and a wrong Content-Length), so the server's file is
            # shorter than ours.
            raise Restart("the server answered 416 Range Not Satisfiable")
        job.fail_status(response)

    def _collapse_to_one_part(self, part: st.Part) -> bool:
        """Make the whole file one part when the first request got the whole body (a 200).

        Possible while no other worker has asked (they wait for ranges_ok) and nothing is on disk:
        this response is then exactly the file from byte 0, worth using rather than throwing away.
        """
        ctx = self.ctx
        with ctx.lock:
            if part is not ctx.parts[0] or any(p.done for p in ctx.parts):
                return False
            if len(ctx.parts) > 1 and ctx.ranges_ok.is_set():
                return False
            part.end = self.job.size
            ctx.parts[:] = [part]
            ctx.pending.clear()
            self.job.ranges_unsupported = True
        ctx.ranges_ok.set()  # waiting workers find no work and exit
        return True

    def _stream(self, fd: int, part: st.Part, response: httpx.Response) -> None:
        ctx = self.ctx
        with ctx.lock:
            ctx.active.add(response)
        try:
            self._check_response(part, response)
            raw = raw_body(response)
            if raw is not None:
                self._stream_raw(fd, part, raw)
                return
            pos = part.pos
            for chunk in response.iter_raw():
                if ctx.cancel.is_set() or not self._put(fd, part, pos, memoryview(chunk)):
                    return
                pos += len(chunk)
        finally:
            with ctx.lock:
                ctx.active.discard(response)
            response.close()

    def _stream_raw(self, fd: int, part: st.Part, raw: RawBody) -> None:
        """The body from the socket, in RECV_BLOCK reads into this worker's buffer."""
        pos = part.pos
        if raw.buffered:
            if not self._put(fd, part, pos, memoryview(raw.buffered)):
                return
            pos += len(raw.buffered)
        view = self._buffer()
        while not self.ctx.cancel.is_set():
            try:
                n = raw.recv_into(view)
            except TimeoutError:
                raise Retryable(f"no data for {self.job.stall_timeout:g} s") from None
            except OSError as exc:
                if self.ctx.cancel.is_set():
                    return  # the socket was shut down to stop us
                raise Retryable(f"{type(exc).__name__}: {exc}") from None
            if n == 0:
                raw.release()  # the whole body was read: the connection can serve the next part
                return
            if not self._put(fd, part, pos, view[:n]):
                raw.release()  # (only when the part's end was also the body's end)
                return
            pos += n

    def _buffer(self) -> memoryview:
        """This worker thread's receive buffer, allocated once."""
        view: memoryview | None = getattr(self._local, "view", None)
        if view is None:
            view = self._local.view = memoryview(bytearray(RECV_BLOCK))
        return view

    def _put(self, fd: int, part: st.Part, pos: int, data: memoryview) -> bool:
        """Write ``data`` (the body's bytes from ``pos``) and claim it; False once the part's end
        is reached (read anew each time: another worker may have taken the part's second half)."""
        end = part.end
        if end is not None and pos + len(data) > end:
            data = data[: max(0, end - pos)]  # never write past the part
        if data:
            self._write(fd, data, pos)
            self.ctx.claim(part, len(data))
        return end is None or pos + len(data) < end

    def _write(self, fd: int, view: memoryview, pos: int) -> None:
        try:
            while view:
                n = os.pwrite(fd, view, pos) if hasattr(os, "pwrite") else _seek_write(fd, view, pos)
                view = view[n:]
                pos += n
        except OSError as exc:
            if is_disk_full(exc):
                raise self.job.disk_full_error(exc) from None
            raise


def _seek_write(fd: int, data: memoryview, pos: int) -> int:  # pragma: no cover - Windows
    os.lseek(fd, pos, os.SEEK_SET)
    return os.write(fd, data)
