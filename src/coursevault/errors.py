"""The one error hierarchy of coursevault.

Every failure a user can meet is a subclass of :class:`CoursevaultError`, so a
script can catch precisely what it cares about and the CLI can turn any of them
into one line on stderr and a meaningful exit code.  Third-party exceptions
(lxml, zstandard, SQLAlchemy, botocore, OSError) are translated where they
cross into coursevault, never leaked raw.

"Missing" and "corrupt" are kept apart on purpose: a missing object may be
repaired by syncing from another copy, a corrupt one must never be returned.
"""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_NO_REPOSITORY = 10
EXIT_LOCKED = 11
EXIT_WRONG_PASSWORD = 12  # an encrypted repository's passphrase opens none of its slots
EXIT_SITE = 13
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports a command SIGINT ended
EXIT_TERMINATED = 143  # SIGTERM (systemd stopping the service, timeout), cleaned up as Ctrl-C


class CoursevaultError(Exception):
    """Base of all coursevault errors."""

    exit_code = EXIT_FAILURE


class BadInputError(CoursevaultError):
    """The user gave us something we cannot accept (usage, file, selector)."""

    exit_code = EXIT_BAD_INPUT


class UsageError(BadInputError):
    """Wrong arguments or options."""


class ArchiveError(BadInputError):
    """An archive (.mbz) is unreadable or unsafe; names the archive and member."""

    def __init__(self, archive: str, message: str, member: str | None = None) -> None:
        self.archive = archive
        self.member = member
        self.reason = message
        where = f"{archive}: {member}" if member else archive
        super().__init__(f"{where}: {message}")


class XmlError(ArchiveError):
    """An XML member is malformed or unsafe (DTD, entities)."""


class ArchivesRefusedError(BadInputError):
    """Some of several archives were refused (each reported as it was); the
    others were stored."""

    def __init__(self, refused: int, total: int) -> None:
        self.refused = refused
        self.total = total
        super().__init__(f"{refused} of {total} archives refused")


class SelectorError(BadInputError):
    """A snapshot selector matched nothing or more than one snapshot."""


class RepositoryError(CoursevaultError):
    """Problems with the repository as a whole."""


class NoRepositoryError(RepositoryError):
    """There is no repository at the given location."""

    exit_code = EXIT_NO_REPOSITORY


class RepositoryExistsError(RepositoryError):
    """`init` on a location that already holds a repository."""

    exit_code = EXIT_BAD_INPUT


class IncompatibleRepositoryError(RepositoryError):
    """``sync`` between repositories whose parameters differ (format version,
    chunkers, dictionary depth), or a repository with itself: the same
    content would not be the same objects on both sides."""

    exit_code = EXIT_BAD_INPUT


class FormatVersionError(RepositoryError):
    """The repository was written by a newer, unknown format version."""


class LockHeldError(RepositoryError):
    """Another process holds a lock that conflicts with ours."""

    exit_code = EXIT_LOCKED


class WrongPasswordError(RepositoryError):
    """No key slot of an encrypted repository opens with the passphrase given
    (or none was given): not damage, so its own exit code, as restic's."""

    exit_code = EXIT_WRONG_PASSWORD


class ObjectMissingError(RepositoryError):
    """An object is referenced but not in the index or not in its pack."""

    def __init__(self, object_id: str, detail: str = "") -> None:
        self.object_id = object_id
        super().__init__(f"object {object_id} is missing" + (f": {detail}" if detail else ""))


class CorruptionError(RepositoryError):
    """Stored bytes do not match what they claim to be."""


class ChecksumMismatchError(CorruptionError):
    """An object's content does not hash to its id."""

    def __init__(self, object_id: str, pack: str, detail: str = "") -> None:
        self.object_id = object_id
        self.pack = pack
        msg = f"object {object_id} in pack {pack} is corrupt"
        super().__init__(msg + (f": {detail}" if detail else ""))


class BackendError(RepositoryError):
    """The storage backend failed (I/O error, permission, network).

    ``retryable`` says whether the same call may succeed if tried again (a
    timeout, an HTTP 500 or 503) or cannot (access denied, no such bucket):
    the retrying wrapper gives up at once on the latter."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class TruncatedError(BackendError):
    """A file is shorter than the range read from it: the backend answered,
    and what it holds is damaged (a pack cut short), which no retry heals.
    The repository reports it as corruption."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message, retryable=retryable)


class ScratchError(CoursevaultError):
    """The local temporary space a command writes scratch to (``TMPDIR``: an
    open pack past its spill size) failed -- full, or not writable.  Nothing
    in it is durable; the command wrote no snapshot."""


class SnapshotFileError(BackendError):
    """A snapshot was committed -- its series' ref holds its record, every
    object it names is durable and indexed -- but its own file could not be
    written.  The next writer of the series (or ``prune``, ``forget``)
    writes it: the backup is not to be run again for it."""

    def __init__(self, snap_id: str, series: str, cause: BaseException) -> None:
        self.snap_id = snap_id
        super().__init__(
            f"snapshot {snap_id[:12]} of {series} is committed (its ref holds it), but its "
            f"file was not written ({cause}): the next backup of {series}, or prune, writes "
            "it -- do not run this backup again", retryable=False)


class CatalogError(RepositoryError):
    """The local catalog database failed."""


class CatalogDamagedError(CatalogError):
    """The catalog's database file is damaged (not locked, not busy): being a
    cache, it can be rebuilt from the repository (``index rebuild``)."""


class SiteError(CoursevaultError):
    """A Moodle site cannot be read: its database is unreachable, refuses
    our credentials, is not a Moodle database (or not a version the
    definitions know), or its dataroot holds no file store.  Nothing was
    written; the message names the site part at fault."""

    exit_code = EXIT_SITE


class SiteDataError(BadInputError):
    """What was asked of a readable site is not there (a course id that does
    not exist) or is inconsistent (a row a backup needs is missing)."""
