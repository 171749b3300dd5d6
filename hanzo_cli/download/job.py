"""One download job: what is fetched, from where, to where, and what has been learned so far."""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from hanzo_cli.download import policy
from hanzo_cli.download.result import Notify
from hanzo_cli.errors import DiskFullError, IntegrityError

if TYPE_CHECKING:
    import httpx


@dataclass
class Job:
    url: str
    dest: Path
    partial: Path
    expected_size: int | None
    expected_sha: str | None
    headers: dict[str, str]
    label: str
    connections: int
    stall_timeout: float
    retries: int
    notify: Notify
    client: httpx.Client | None = None
    size: int | None = None  # expected, or learned from the server
    ranges_unsupported: bool = False  # learned: the server ignores Range
    fetched: int = 0  # over all attempts of this call
    resumed: bool = False
    safe_url: str = field(init=False)

    def __post_init__(self) -> None:
        self.safe_url = policy.safe_url(self.url)
        self.size = self.expected_size

    def send(self, range_start: int | None, range_end: int | None) -> httpx.Response:
        assert self.client is not None
        return policy.send(self.client, self.url, self.headers, range_start, range_end, self.stall_timeout)

    def fail_status(self, response: httpx.Response) -> NoReturn:
        policy.fail_status(response, self.label, self.safe_url)

    def size_changed(self, actual: int) -> NoReturn:
        if self.expected_size is not None:
            raise IntegrityError(
                f"size mismatch for {self.label}: expected {self.expected_size} bytes, "
                f"the server has {actual} ({self.safe_url})"
            )
        raise policy.Restart(f"the file changed on the server ({self.size} -> {actual} bytes)")

    def disk_full_error(self, exc: OSError) -> DiskFullError:
        what = "disk full" if exc.errno == errno.ENOSPC else "disk quota exceeded"
        return DiskFullError(
            f"{what} while downloading {self.label} to {self.partial.parent}; "
            "free some space and run again to resume"
        )
