"""How many connections a transfer uses: start with one, multiply while aggregate throughput
keeps rising, step back when a step did not raise it (and probe again later), halve on 429/503.

CDN edges cap each connection's rate (registry.ollama.ai's blob storage, the Hub's CDN), so there
the number of connections sets the time; on a fast link (a data centre, a LAN mirror, loopback)
one connection already fills it, and every other one only adds threads and requests (measured on
loopback: 4 connections cost 10-15% against 1). Measuring tells the two apart without
configuration. Pure logic on (time, bytes) samples, so it can be tested without a network.
"""

from __future__ import annotations

#: Connections a transfer starts with.
START = 1
#: The first step doubles (a cheap probe on a fast link, where it is undone); each step that
#: then scaled throughput almost in proportion (LINEAR of its factor or better) is followed by one
#: of CLIMB (1, 2, 8, 16): behind a CDN edge every window spent below the cap costs time.
CLIMB = 4
#: Throughput is judged over this long (seconds) after a change has settled for SETTLE seconds
#: (new connections need a handshake and a first byte before they count).
WINDOW = 0.12
SETTLE = 0.05
#: Climbing goes on while each step raises throughput by at least GAIN. A step that raised it by
#: less than KEEP is undone (the link was full: more would only add threads); in between, the new
#: count stays and climbing stops.
GAIN = 1.25
KEEP = 1.1
#: A step of more than a doubling that paid off less than LINEAR of its factor overshot: the count
#: halfway is measured too, and kept if it is within KEEP of the higher one.
LINEAR = 0.6
#: After a 429/503 the count is halved and not raised again for this long (seconds).
THROTTLE_HOLD = 5.0
#: A settled count is probed again (one doubling) after REPROBE seconds: a window judged while new
#: connections were still starting, or a busy CPU, must not cap the transfer for good. Each probe
#: that did not pay doubles the wait, up to REPROBE_MAX (each one costs a window).
REPROBE = 1.0
REPROBE_MAX = 8.0


class Ramp:
    """The connection target of one transfer, fed with (time, total bytes) samples."""

    def __init__(self, cap: int, now: float) -> None:
        self.cap = max(1, cap)
        self.target = min(self.cap, START)
        self._changed_at = now
        self._base: tuple[float, int] | None = None  # the sample the current window starts from
        self._rate_before: float | None = None  # throughput measured at the previous target
        self._previous_target = self.target
        self._factor = 2  # of the next step up
        self._overshoot: tuple[int, float] | None = None  # (count, rate) while halfway is measured
        self._settled = False  # climbing stopped (until _hold_until): more connections did not help
        self._hold_until = now
        self._reprobe_every = REPROBE
        self._probing = False  # the current step is a probe from a settled count

    def sample(self, now: float, total: int, running: int | None = None) -> int:
        """Feed the bytes transferred so far and how many connections are ``running`` (the
        target, if not given); returns the (possibly new) target."""
        if now < self._hold_until or (self.target >= self.cap and self._settled):
            return self.target
        if running is not None and running < self.target and not self._settled:
            # The new connections found no work yet (none pending, none worth splitting): a
            # window now would judge a count that is not running.
            self._restart_window(now)
            return self.target
        if self._settled:  # probe again: measure the current count, then double it
            self._settled = False
            self._rate_before = None
            self._factor = 2
            self._probing = True
            self._restart_window(now)
        since = now - self._changed_at
        if since < SETTLE:
            return self.target
        if self._base is None:
            self._base = (now, total)
            return self.target
        start, start_total = self._base
        if now - start < WINDOW:
            return self.target
        self._judge(now, (total - start_total) / (now - start))
        self._restart_window(now)
        return self.target

    def _judge(self, now: float, rate: float) -> None:
        """Decide the next target from the throughput measured at the current one."""
        before = self._rate_before
        if self._overshoot is not None:  # this was the count halfway back from an overshoot
            high, high_rate = self._overshoot
            self._overshoot = None
            if rate * KEEP < high_rate:
                self.target = high
            self._settle(now, paid=True)
        elif before is not None and rate < before * KEEP:
            # The last step did not pay (or made it slower): go back, and stay there a while.
            self.target = self._previous_target
            self._settle(now, paid=False)
        elif (
            before is not None
            and (factor := self.target / self._previous_target) > 2
            and (rate < before * (1 + (factor - 1) * LINEAR))
        ):
            self._overshoot = (self.target, rate)
            self.target = self._previous_target * 2
        elif before is not None and rate < before * GAIN:
            self._settle(now, paid=True)  # it helped a little: keep it, but more would not
        elif self.target < self.cap:
            if before is not None:
                factor = self.target / self._previous_target
                self._factor = CLIMB if rate >= before * (1 + (factor - 1) * LINEAR) else 2
            self._previous_target = self.target
            self._rate_before = rate
            self.target = min(self.cap, self.target * self._factor)
        else:
            self._settle(now, paid=True)

    def throttled(self, now: float) -> int:
        """The server said too many (429/503): halve, and hold for a while."""
        self.target = max(1, self.target // 2)
        self._previous_target = self.target
        self._rate_before = None
        self._overshoot = None
        self._hold_until = now + THROTTLE_HOLD
        self._settled = True  # probed again once the hold is over
        self._restart_window(now)
        return self.target

    def _settle(self, now: float, *, paid: bool) -> None:
        if self._probing and not paid:
            self._reprobe_every = min(REPROBE_MAX, self._reprobe_every * 2)
        elif paid:
            self._reprobe_every = REPROBE
        self._probing = False
        self._settled = True
        self._hold_until = now + self._reprobe_every

    def _restart_window(self, now: float) -> None:
        self._changed_at = now
        self._base = None
