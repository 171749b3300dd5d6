"""The error types hanzo raises on purpose.

Every error a user can cause (bad reference, missing model, server refusal, full disk) is a
:class:`HanzoError`; the CLI prints it as one ``Error: ...`` line on stderr and exits 1.
"""

from __future__ import annotations

import click


class HanzoError(click.ClickException):
    """An expected failure, reported as one line without a traceback."""

    exit_code = 1


class NotFoundError(HanzoError):
    """A model, file or repository does not exist (locally or on the server)."""


class MissingPluginError(HanzoError):
    """A feature is provided by a plugin that is not installed; the message names the extra."""


class DownloadError(HanzoError):
    """A download failed after its retries; any partial file is kept for the next attempt."""


class IntegrityError(DownloadError):
    """Downloaded bytes do not match the expected digest or size; nothing was kept."""


class DiskFullError(HanzoError):
    """Not enough free space for a download or a write."""
