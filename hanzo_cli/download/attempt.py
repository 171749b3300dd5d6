"""One attempt at a transfer: the parts, who fetches which, and the state the threads share.

Parts are handed out in file order (so the completed prefix the hasher follows stays close behind
the download). A connection that proved fast takes several neighbouring parts as one request (up
to RUN_SECONDS of its measured rate): on a fast link a request's round trip is worth milliseconds,
and a registry that looks the blob up for every request would otherwise spend more time on
requests than on bytes. When none is left, an idle worker takes the second half of the part in
flight with the most bytes to go (work stealing): one slow connection does not set the finish
time, and a file planned in a few large parts still uses every connection to the end.
"""

from __future__ import annotations

import bisect
import threading
import time
from typing import TYPE_CHECKING

from hanzo_cli.download import state as st
from hanzo_cli.download.hashing import PrefixHasher
from hanzo_cli.download.policy import MiB, is_disk_full
from hanzo_cli.download.ramp import Ramp

if TYPE_CHECKING:
    import httpx

    from hanzo_cli.download.job import Job

#: A part in flight is split only if both halves would have at least this many bytes to go, and
#: at its current rate it would need at least STEAL_AFTER seconds more: splitting closes the
#: first half's connection at the split point, which throws away what was in flight on it (on a
#: fast link that can be megabytes, for no gain).
STEAL_MIN = 1 * MiB
STEAL_AFTER = 0.5
#: Split points are aligned to this (page- and block-aligned writes).
_ALIGN = 64 * 1024
#: A connection's next request covers about this long at the rate its last one achieved (seconds):
#: long enough that a round trip is a few percent of it, short enough that the prefix the hasher
#: follows is never far behind the other connections. Each request may be at most RUN_GROWTH
#: times the last (a short request understates a fast link, as TCP's own start does).
RUN_SECONDS = 0.1
RUN_GROWTH = 4


class Attempt:
    """What the threads of one attempt share. A fresh one per attempt, so that a worker stuck in
    a syscall past its attempt can never touch the next attempt's parts, events or state."""

    def __init__(self, job: Job, parts: list[st.Part]) -> None:
        self.job = job
        self.parts = parts  # sorted by start; tiles the file
        self.lock = threading.Lock()  # guards the parts, pending, busy, counters, error, active
        self.cancel = threading.Event()
        self.ranges_ok = threading.Event()  # a 206 arrived (or the plan no longer has several parts)
        self.ranges_seen = False  # a 206 arrived: parts may be split (a pull-through cache that
        # has yet to fetch a blob answers ranges with the whole body, a 200)
        self.workers_done = threading.Event()
        self.hash_wake = threading.Event()
        self.wake = threading.Event()  # the caller's thread: a worker finished, or stop
        self.error: BaseException | None = None
        self.active: set[httpx.Response] = set()
        self.pending: list[st.Part] = [p for p in parts if not p.complete]
        self.busy: dict[st.Part, tuple[float, int]] = {}  # part -> (when taken, its done then)
        self.run_bytes: dict[int, int] = {}  # worker index -> how much its next request may cover
        self.fetched = 0
        self.since_save = 0
        self.save_every = st.save_interval(job.size)
        self.save_wanted = threading.Event()  # wakes the saver thread
        self.save_lock = threading.Lock()  # one state write at a time, in claim order
        self.state_closed = False  # set once the attempt is over: late writes claim nothing
        self.ramp = Ramp(job.connections, time.monotonic())
        self.hasher = PrefixHasher(
            job.partial, self.frontier, finished=self.workers_done, cancel=self.cancel, wake=self.hash_wake
        )

    # --- progress -------------------------------------------------------------------------------

    def completed(self) -> int:
        with self.lock:
            return sum(p.done for p in self.parts)

    def frontier(self) -> int:
        """End of the contiguous completed prefix of the file."""
        with self.lock:
            frontier = 0
            for p in self.parts:
                frontier = p.pos
                if not p.complete:
                    break
            return frontier

    def unfinished(self) -> bool:
        with self.lock:
            return any(p.end is not None and not p.complete for p in self.parts)

    def claim(self, part: st.Part, n: int) -> None:
        """Count ``n`` more bytes of ``part`` as written, and ask for a state save now and then.
        Bytes past the part's end (it was split meanwhile) are the new part's to claim."""
        with self.lock:
            if part.end is not None:
                n = min(n, part.end - part.pos)
            part.done += n
            self.fetched += n
            self.since_save += n
            save = self.since_save >= self.save_every
        if save:
            self.save_wanted.set()

    # --- handing out work -----------------------------------------------------------------------

    def take(self, index: int) -> st.Part | None:
        """The next part for worker ``index``, or None when it should stop (no work left, or the
        connection target dropped below it)."""
        with self.lock:
            if index >= self.ramp.target or self.cancel.is_set():
                return None
            part = self._next_run(self.run_bytes.get(index, 0)) if self.pending else self._split_busiest()
            if part is None:
                return None
            self.busy[part] = (time.monotonic(), part.done)
            return part

    def has_work(self) -> bool:
        with self.lock:
            return bool(self.pending) or self._busiest() is not None

    def release(self, part: st.Part, index: int) -> None:
        """Worker ``index`` is done with ``part``: complete, or handed back for another worker."""
        with self.lock:
            since, done_then = self.busy.pop(part, (0.0, part.done))
            got, elapsed = part.done - done_then, time.monotonic() - since
            if part.complete and got > 0 and elapsed > 0:  # (a failed or split request says less)
                self.run_bytes[index] = min(RUN_GROWTH * got, int(got / elapsed * RUN_SECONDS))
            # (A part of unknown end is over when its body ends: there is nothing to hand back.)
            if part.remaining() and not self.cancel.is_set() and part not in self.pending:
                bisect.insort(self.pending, part, key=lambda p: p.start)

    def _next_run(self, budget: int) -> st.Part:
        """The first pending part, merged with the untouched parts right after it while the
        request stays within ``budget`` bytes. Merging parts nobody holds is safe at any time;
        the state file simply lists fewer, larger parts."""
        part = self.pending.pop(0)
        if self.job.ranges_unsupported or not self.ranges_seen:
            return part  # one part per request until a 206 proved ranges work
        while self.pending and part.end is not None:
            following = self.pending[0]
            if following.start != part.end or following.done or following.end is None:
                break
            if following.end - part.pos > budget:
                break
            self.pending.pop(0)
            self.parts.remove(following)
            part.end = following.end
        return part

    def _busiest(self) -> st.Part | None:
        if not self.ranges_seen or self.job.ranges_unsupported:
            return None
        now = time.monotonic()
        best, best_eta = None, STEAL_AFTER
        for part, (since, done_then) in self.busy.items():
            if part.end is None or part.remaining() < 2 * STEAL_MIN or now - since < STEAL_AFTER:
                continue  # (a part taken just now has no rate to judge by yet)
            rate = (part.done - done_then) / (now - since)
            eta = part.remaining() / rate if rate > 0 else float("inf")
            if eta >= best_eta:
                best, best_eta = part, eta
        return best

    def _split_busiest(self) -> st.Part | None:
        victim = self._busiest()
        if victim is None or victim.end is None:
            return None
        middle = victim.pos + victim.remaining() // 2
        middle -= middle % _ALIGN
        if middle - victim.pos < STEAL_MIN:
            return None
        stolen = st.Part(middle, victim.end)
        victim.end = middle
        bisect.insort(self.parts, stolen, key=lambda p: p.start)
        return stolen

    # --- errors and stopping --------------------------------------------------------------------

    def record_error(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = exc
        self.stop_threads()

    def stop_threads(self) -> None:
        self.cancel.set()
        self.wake.set()
        self.ranges_ok.set()  # release workers waiting for the first answer
        self.hash_wake.set()
        self.save_wanted.set()

    # --- the state file -------------------------------------------------------------------------

    def save_state(self, *, final: bool = False) -> None:
        """Write the state; with ``final``, the attempt's last word.

        The snapshot is taken under save_lock, so writes land in claim order, and after the
        bytes it claims were written (workers claim only written bytes).
        """
        job = self.job
        with self.save_lock:
            with self.lock:
                if self.state_closed:
                    return
                self.since_save = 0
                self.state_closed = final
                text = st.state_text(job.size, job.expected_sha, self.parts)
            try:
                st.write_state(job.partial, text)
            except OSError as exc:
                if is_disk_full(exc):
                    raise job.disk_full_error(exc) from None
                raise

    def close_state(self) -> None:
        """The attempt completed: no state write may land after the partial is renamed."""
        with self.save_lock, self.lock:
            self.state_closed = True
        self.save_wanted.set()
