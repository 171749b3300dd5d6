"""The exceptions hanzo raises on purpose. They know nothing of the CLI.

Every failure a user can cause (a bad reference, a missing model, a server's refusal, a full disk)
is a :class:`HanzoError`. Only the CLI boundary (:func:`hanzo_cli.cli.main`) turns one into an
``Error: ...`` line and an exit code; the node turns them into HTTP answers, a library caller catches
them like any exception. The classes say what went wrong, so callers decide by type, never by text:

- :class:`ModelNotFoundError`: *this provider* has no model of that name. Resolution falls through to
  the next provider that accepts the name.
- :class:`RemoteFileNotFoundError`: a file the server listed, or a URL it handed out, is missing.
  That is a broken source, not a miss: a pull fails here and does not fall through.
"""

from __future__ import annotations


class HanzoError(Exception):
    """An expected failure, reported as one line without a traceback."""

    #: The process exit status the CLI uses for this error.
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(HanzoError):
    """The command line asks for something inconsistent (an option the provider does not take)."""

    exit_code = 2


class ConfigError(HanzoError):
    """The settings file or an environment variable holds something hanzo cannot use."""


class InvalidReferenceError(HanzoError):
    """A model reference or name that no grammar accepts (empty, control characters, traversal)."""


class NotFoundError(HanzoError):
    """Something that should exist locally does not (a model that is not pulled, a file)."""


class ModelNotFoundError(NotFoundError):
    """The provider has no model of that name: try the next provider."""


class MissingPluginError(HanzoError):
    """A feature is provided by a plugin that is not installed; the message names the extra."""


class PluginError(HanzoError):
    """A plugin is broken: an unknown hook, a duplicate name, a wrong type registered."""


class DownloadError(HanzoError):
    """A download failed after its retries; any partial file is kept for the next attempt."""


class RemoteFileNotFoundError(DownloadError):
    """The server answered 404/410 for a file it had promised: a broken source, not a missing model."""


class AuthenticationError(DownloadError):
    """The server refused the credentials (401/403)."""


class IntegrityError(DownloadError):
    """Downloaded bytes do not match the expected digest or size; nothing was kept."""


class DiskFullError(HanzoError):
    """Not enough free space for a download or a write."""


class ModelFileError(HanzoError):
    """A model file is unusable: truncated, corrupt, or one a runtime would crash on."""


class RuntimeFailure(HanzoError):
    """A runtime failed while loading or running a model."""
