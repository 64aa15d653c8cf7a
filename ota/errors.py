"""Why an update was refused: one exception class per reason.

The fleet layer reports the class name (``BadSignatureError``...) and the message, so
an operator can tell a tampered file from a wrong board from a flaky network without
reading logs. Every refusal is an :class:`UpdateError`; misuse of the agent (a job
already running, a missing slot) is an :class:`AgentError` instead.
"""

from __future__ import annotations


class UpdateError(Exception):
    """An update that must not be installed; the message says why."""


class CorruptArchiveError(UpdateError):
    """The file is not a readable tar archive (truncated, damaged, not a tar at all)."""


class ArchiveLimitError(CorruptArchiveError):
    """Larger than this device reads: the file, a header, or what precedes the signature.

    Raised before the oversized part is read (the limits are in :mod:`ota.tarstream`)."""


class UnsafePathError(UpdateError):
    """A member that could write outside its bundle: absolute, ``..``, a link, a device."""


class BadSignatureError(UpdateError):
    """No signature, a malformed one, or one that does not match the signed statement."""


class UnknownKeyError(UpdateError):
    """Signed by a key this device does not trust."""


class HashMismatchError(UpdateError):
    """A file's size or sha256 differs from the signed statement."""


class MissingFileError(UpdateError):
    """A file the signed statement lists is not in the archive."""


class ExtraFileError(UpdateError):
    """The archive holds a file the signed statement does not list."""


class ManifestInvalidError(UpdateError):
    """The bundle's manifest (or the signed statement) is malformed or inconsistent."""


class IncompatibleError(UpdateError):
    """The bundle is not meant for this board or none of its runtimes can run it."""


class DowngradeError(UpdateError):
    """Older than the version already installed: anti-rollback refuses it."""


class DownloadError(UpdateError):
    """The update could not be fetched. ``retryable``: a later resume may succeed."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class KeyFileError(Exception):
    """A key file that cannot be read or is not an ed25519 key."""


class AgentError(Exception):
    """The agent cannot do what was asked now (a job in progress, no slots, a lock)."""
