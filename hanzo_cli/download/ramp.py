"""How many connections a transfer uses: start with a few, double while aggregate throughput
keeps rising, step back when a doubling did not raise it (and probe again a second later),
halve on 429/503.

CDN edges cap each connection's rate (registry.ollama.ai's blob storage, the Hub's CDN), so there
the number of connections sets the time; on a fast link one connection may already fill it, and
more only add threads. Measuring tells the two apart without configuration. Pure logic on
(time, bytes) samples, so it can be tested without a network.
"""

from __future__ import annotations

#: Connections a transfer starts with (fewer when the cap is lower).
START = 4
#: Throughput is judged over this long (seconds) after a change has settled for SETTLE seconds
#: (new connections need a handshake and a first byte before they count).
WINDOW = 0.12
SETTLE = 0.05
#: Ramping goes on while each doubling raises throughput by at least GAIN. A doubling that raised
#: it by less than KEEP is undone (the link was full: more would only add threads); in between,
#: the new count stays and ramping stops.
GAIN = 1.25
KEEP = 1.1
#: After a 429/503 the count is halved and not raised again for this long (seconds).
THROTTLE_HOLD = 5.0
#: A settled count is probed again (one more doubling) after this long: a window judged while new
#: connections were still starting, or a busy CPU, must not cap the transfer for good.
REPROBE = 1.0


class Ramp:
    """The connection target of one transfer, fed with (time, total bytes) samples."""

    def __init__(self, cap: int, now: float) -> None:
        self.cap = max(1, cap)
        self.target = min(self.cap, START)
        self._changed_at = now
        self._base: tuple[float, int] | None = None  # the sample the current window starts from
        self._rate_before: float | None = None  # throughput measured at the previous target
        self._previous_target = self.target
        self._settled = False  # ramping stopped (until _hold_until): more connections did not help
        self._hold_until = now

    def sample(self, now: float, total: int) -> int:
        """Feed the bytes transferred so far; returns the (possibly new) target."""
        if now < self._hold_until or (self.target >= self.cap and self._settled):
            return self.target
        if self._settled:  # probe again: measure the current count, then double it
            self._settled = False
            self._rate_before = None
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
        rate = (total - start_total) / (now - start)
        before = self._rate_before
        if before is not None and rate < before * KEEP:
            # The last doubling did not pay (or made it slower): go back, and stay there a while.
            self.target = self._previous_target
            self._settle(now)
        elif before is not None and rate < before * GAIN:
            self._settle(now)  # it helped a little: keep it, but more would not
        elif self.target < self.cap:
            self._previous_target = self.target
            self._rate_before = rate
            self.target = min(self.cap, self.target * 2)
        else:
            self._settle(now)
        self._restart_window(now)
        return self.target

    def throttled(self, now: float) -> int:
        """The server said too many (429/503): halve, and hold for a while."""
        self.target = max(1, self.target // 2)
        self._previous_target = self.target
        self._rate_before = None
        self._hold_until = now + THROTTLE_HOLD
        self._settled = True  # probed again once the hold is over
        self._restart_window(now)
        return self.target

    def _settle(self, now: float) -> None:
        self._settled = True
        self._hold_until = now + REPROBE

    def _restart_window(self, now: float) -> None:
        self._changed_at = now
        self._base = None
