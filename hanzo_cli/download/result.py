"""What a download returns, and where it reports: kept apart so importing the downloader's entry point
costs nothing until a download runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: Where informational lines go (the CLI passes its stderr printer; the engine prints nothing).
Notify = Callable[[str], None]


@dataclass(frozen=True)
class DownloadResult:
    path: Path  # final file
    size: int
    sha256: str  # hex digest of the final file
    fetched: int  # bytes actually received over the network in this call (0 when already present)
    resumed: bool  # True when a partial from an earlier process was reused
