"""Named errors for everything a user can get wrong, each with its own exit code.

Library code raises these; only the CLI turns them into one-line messages, so that a batch can report a bad
file and go on, and scripts can tell "your input" from "our bug" by the exit code.
"""

from __future__ import annotations


class DefocusError(Exception):
    """Base of every error caused by input, configuration or environment rather than by a bug."""

    exit_code: int = 1


class UsageError(DefocusError):
    """Options that contradict each other or name something that does not exist."""

    exit_code = 2


class UnknownMethodError(UsageError):
    """``--method`` names no registered method."""


class PhotoError(DefocusError):
    """A photo could not be read: corrupt, truncated, empty, not an image, or too large."""

    exit_code = 3


class UnsupportedFormatError(PhotoError):
    """The file is an image, but not one we can decode or encode."""


class PhotoTooLargeError(PhotoError):
    """The photo exceeds the pixel limit (``--max-megapixels``)."""


class EncodeError(DefocusError):
    """Writing a result failed; no partial file is left behind."""

    exit_code = 4


class WeightsError(DefocusError):
    """A checkpoint is missing, malformed, or does not match the architecture key for key."""

    exit_code = 5


class WeightsMissingError(WeightsError):
    """The weights for a method are not cached and cannot be fetched (offline, or import-only source)."""


class ManifestError(WeightsError):
    """``weights_manifest.json`` is malformed."""


class DownloadError(WeightsError):
    """A download failed: HTTP error, network unreachable, disk full."""

    exit_code = 6


class HashMismatchError(DownloadError):
    """A downloaded file's sha256 differs from the pinned one; the file has been deleted."""


class DeviceError(UsageError):
    """The requested device or precision is not available on this machine."""


class DataError(DefocusError):
    """A dataset folder is missing files or its pairs do not match."""

    exit_code = 7


class OutputError(EncodeError):
    """The output folder cannot be used: it is a file, cannot be created, or is not writable."""


class DiskFullError(EncodeError):
    """The disk (or quota) filled up while writing; the batch stops, since every later photo would fail too."""
