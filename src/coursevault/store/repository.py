"""The repository: config, objects in packs, index files, snapshots, refs.

Write order is what makes a crash harmless (docs/format.md, "Durability"):

1. packs are written (atomically) as they fill;
2. on commit, index files naming every new object are written;
3. only then is the snapshot file written, so a visible snapshot never
   references an object that is not durable and indexed.

A writer killed before step 3 leaves at most unreferenced packs, which
``check`` reports and ``prune`` removes.  A writer that fails cleanly (bad
input) deletes the packs it wrote: nobody else can know them, because their
objects were never indexed.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coursevault.errors import (
    BackendError,
    BadInputError,
    CatalogDamagedError,
    CorruptionError,
    FormatVersionError,
    NoRepositoryError,
    RepositoryExistsError,
    UsageError,
)
from coursevault.store.backend import Backend, require_empty
from coursevault.store.catalog import Catalog
from coursevault.store.catalog_sync import open_catalog, reset_damaged, sqlite_path, sync_catalog
from coursevault.store.dictionaries import DEFAULT_DICT_DEPTH, MAX_DICT_DEPTH, DictionaryReads
from coursevault.store.ids import ObjectId, current_id_key, use_id_key
from coursevault.store.journal import write_checkpoint
from coursevault.store.keys import ENCRYPTED_VERSION, Password, new_encryption, sealed_backend
from coursevault.store.locks import Lock
from coursevault.store.pack import MAX_PACK_OBJECTS, pack_files
from coursevault.store.session import WriteSession
from coursevault.store.snapshots import (
    FANOUT_VERSION,
    SnapshotRecords,
    snapshot_dictionary,
    snapshot_key,
    snapshot_row,
)
from coursevault.store.stored_inputs import StoredInputs

# Callers import these from here (the repository's public names).
__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_DICT_DEPTH",
    "MAX_DICT_DEPTH",
    "MAX_PACK_OBJECTS",
    "Repository",
    "default_cache_dir",
    "snapshot_dictionary",
    "snapshot_key",
    "snapshot_row",
]

# version 2 adds dictionary blocks (codec 2), version 3 walk dictionaries,
# 4 is 3 encrypted, 5 snapshot records in subfolders (plain or encrypted)
FORMAT_VERSION = FANOUT_VERSION
SUPPORTED_VERSIONS = (1, 2, 3, ENCRYPTED_VERSION, FANOUT_VERSION)
DEFAULT_PACK_SIZE = 16 * 1024 * 1024
# 1 MiB blocks: on the generated 50 MB course night 1 stores 11.8 MB instead
# of 13.7 MB at 128 KiB (zstd finds more of a forum's repeats in a block); a
# night's new objects fill less than one block either way.  Reading one
# object decodes its block, ~1 ms.
DEFAULT_BLOCK_SIZE = 1024 * 1024
# Readers hold whole blocks; a dictionary block's window reaches 8 MiB.
MIN_BLOCK_SIZE = 1024
MAX_BLOCK_SIZE = 8 * 1024 * 1024
DEFAULT_LEVEL = 3
MAX_PACK_SIZE = 1024 * 1024 * 1024


def _is_repository_id(value: object) -> bool:
    return (isinstance(value, str) and len(value) == 32
            and all(c in "0123456789abcdef" for c in value))


def default_cache_dir() -> Path:
    """Where catalogs live unless told otherwise (the CLI honours XDG_CACHE_HOME)."""
    return Path.home() / ".cache" / "coursevault"


class Repository(SnapshotRecords, DictionaryReads):
    """An open repository; see :meth:`init` and :meth:`open`.

    A façade over its parts: object reads and their caches (``objects.py``),
    dictionaries (``dictionaries.py``), snapshot records (``snapshots.py``);
    here are the config, the catalog, locks and write sessions.
    """

    def __init__(
        self,
        backend: Backend,
        config: dict[str, Any],
        catalog: Catalog,
        cache_folder: Path | None = None,
    ) -> None:
        self.backend = backend
        self.config = config
        self._cache_folder = cache_folder
        self.id: str = config["id"]
        self.catalog = catalog
        self.notices: list[str] = []
        # ids of the snapshot records the catalog found damaged and left out
        # (store/catalog_sync.py): a sync must not report such a course copied
        self.damaged_records: list[str] = []
        # (journal id, generation) of the last journal entry this process
        # wrote: where the next one looks for a free generation from
        self.journal_tail: tuple[str, int] | None = None
        DictionaryReads.__init__(self, cache_folder)

    @property
    def scratch_folder(self) -> Path | None:
        """Where commands that look at every snapshot keep their scratch
        sets (store/scratch.py): this repository's cache folder, on local
        disk; None (the system's temporary folder) without one."""
        return self._cache_folder

    # -- creation and opening ---------------------------------------------------------
    @staticmethod
    def init(
        backend: Backend,
        *,
        pack_size: int = DEFAULT_PACK_SIZE,
        block_size: int = DEFAULT_BLOCK_SIZE,
        level: int = DEFAULT_LEVEL,
        dictionary_depth: int = DEFAULT_DICT_DEPTH,
        password: bytes | None = None,
        kdf: dict[str, Any] | None = None,
        id_key: bytes | None = None,
    ) -> dict[str, Any]:
        """Create a new, empty repository; fails if one exists there.

        With ``password``, an encrypted one (keys.py, crypto.py): its keys
        made now, held in one key slot that ``password`` opens (``kdf``: the
        slot's Argon2id parameters, keys.KDF if None); ``id_key``: another
        encrypted repository's, so the two sync (keys.new_encryption).

        ``dictionary_depth`` bounds chains of dictionaries (0: none are used).
        Deeper chains compress more nights against their predecessors, but
        prune can free a forgotten night's small trees only once no kept
        block's chain reaches them: at most that many nights later.
        """
        if not 0 <= dictionary_depth <= MAX_DICT_DEPTH:
            raise BadInputError(f"dictionary depth must be 0-{MAX_DICT_DEPTH}")
        if not MIN_BLOCK_SIZE <= block_size <= MAX_BLOCK_SIZE:
            raise BadInputError(
                f"block size must be {MIN_BLOCK_SIZE // 1024}-{MAX_BLOCK_SIZE // 1024} KiB"
            )
        # 0 wrote a pack per object (946 for a 6 MB course); a writer holds a
        # whole pack in memory, so a huge one costs that much memory.
        if not MIN_BLOCK_SIZE <= pack_size <= MAX_PACK_SIZE:
            raise BadInputError(f"pack size must be 1 KiB to {MAX_PACK_SIZE // 2**20} MiB")
        if not 1 <= level <= 22:
            raise BadInputError("zstd level must be 1-22")
        config = {
            "version": FORMAT_VERSION,
            "id": secrets.token_hex(16),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "pack_size": pack_size,
            "block_size": block_size,
            "zstd_level": level,
            "dictionary_depth": dictionary_depth,
            "chunker": {"min": 16 * 1024, "avg": 64 * 1024, "max": 256 * 1024},
            "text_chunker": {"min": 1024, "avg": 4096, "max": 16 * 1024},
        }
        if password is not None:
            config["encryption"], keys = new_encryption(password, kdf, id_key)
        data = json.dumps(config, indent=2, sort_keys=True).encode() + b"\n"
        require_empty(backend)
        if not backend.create("config", data):
            raise RepositoryExistsError(f"a repository already exists at {backend.location()}")
        if password is not None:  # everything after the config is sealed
            from coursevault.store.crypto import EncryptedBackend

            backend = EncryptedBackend(backend, keys)
        write_checkpoint(backend, [], [], fresh=True)  # an empty journal (journal.py)
        return config

    @classmethod
    def open(
        cls,
        backend: Backend,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        catalog_url: str | None = None,
        sync: bool = True,
        password: Password = None,
        wrap: Callable[[Backend, Path], Backend] | None = None,
    ) -> Repository:
        """Open the repository ``backend`` holds; an encrypted one with the
        passphrase ``password`` gives (bytes, or a function asked only when
        the repository is encrypted).  ``wrap`` is applied to the backend
        once the repository's id, and so its cache folder, is known: a
        remote backend's disk cache lives there (``diskcache.disk_cache``),
        under the sealing, so it caches sealed files."""
        try:
            raw = backend.read("config")
        except FileNotFoundError:
            raise NoRepositoryError(f"no repository at {backend.location()}") from None
        try:
            config = json.loads(raw)
            version = int(config["version"])
            # the id names this repository's cache folder (~/.cache/coursevault/<id>):
            # a shared or synced repository whose config said "../../x" or
            # "/home/u/x" made every command write its catalog there
            if not _is_repository_id(config["id"]):
                raise ValueError(f"id {config['id']!r} is not 32 hex digits")
            # what writers read: one missing was an internal error (KeyError)
            for key in ("pack_size", "block_size", "zstd_level"):
                int(config[key])
            for key in ("min", "avg", "max"):
                int(config["chunker"][key])
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptionError(
                f"repository config at {backend.location()} is unreadable"
            ) from exc
        if version not in SUPPORTED_VERSIONS:
            raise FormatVersionError(
                f"repository format version {version} is not supported "
                f"(this program reads versions {', '.join(map(str, SUPPORTED_VERSIONS))})"
            )
        # version 4 is always encrypted, 1-3 never; from 5 the section says
        if version < FANOUT_VERSION and (version == ENCRYPTED_VERSION) != ("encryption" in config):
            keys = "its keys" if "encryption" in config else "no keys"
            raise CorruptionError(
                f"repository config at {backend.location()} is unreadable "
                f"(version {version} with {keys})"
            )
        base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        folder = base / config["id"]
        if wrap is not None:
            backend = wrap(backend, folder)
        backend = sealed_backend(backend, config, password)
        if catalog_url is None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # a file where a folder should be, no permission
                raise BadInputError(
                    f"cannot make the cache folder {folder}: {exc.strerror} "
                    "(give another with --cache-dir)") from None
            catalog_url = f"sqlite:///{folder / 'catalog.sqlite'}"
        notices: list[str] = []
        for attempt in (1, 2):
            catalog = open_catalog(catalog_url, notices.append)
            repo = cls(backend, config, catalog, folder)
            repo.notices = notices
            try:
                repo._adopt_catalog(sync)
                return repo
            except CatalogDamagedError as exc:
                # damage further in than open_catalog reads: start afresh once
                catalog.close()
                path = sqlite_path(catalog_url)
                if path is None or attempt == 2:
                    raise
                reset_damaged(path, exc, notices.append)
        raise AssertionError("unreachable")

    def _adopt_catalog(self, sync: bool) -> None:
        """Claim a new catalog for this repository, or check it is this one's."""
        known = self.catalog.get_meta("repository")
        if known is None:
            self.catalog.set_meta("repository", self.id)
        elif known != self.id:
            self.catalog.close()
            raise CorruptionError(
                f"catalog {self.catalog.shown} belongs to repository {known}, not {self.id}"
            )
        if sync:
            self.sync_catalog()

    def notice(self, message: str) -> None:
        """Record something the user should hear of that does not stop the
        command (a stray file, a damaged index file skipped), once."""
        if message not in self.notices:
            self.notices.append(message)

    def keep_catalog_pages(self, kib: int) -> None:
        """Keep at most ``kib`` KiB of a SQLite catalog's pages in this
        process (:meth:`Catalog.limit_cache`): for a command that looks each
        object up about once, as a backup and a restore do."""
        self.catalog.limit_cache(kib)

    def close(self) -> None:
        self.catalog.close()
        keys = getattr(self.backend, "keys", None)  # an EncryptedBackend's
        if keys is not None and current_id_key() == keys.id_key:
            use_id_key(None)  # plain ids again for whatever this process opens next

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- locks ------------------------------------------------------------------------
    # How long lock() waits for a conflicting lock (math.inf: no limit); the API
    # sets it for the commands given --wait.
    lock_wait: float = 0.0
    # How many packs a write session uploads at once (store/uploads.py); the
    # API raises it for a remote repository, where uploads take time.
    pack_uploads: int = 1
    # Read without a lock (--no-lock): a repository this host may only read
    # (a read-only mount, S3 credentials without write rights, an object lock)
    # can still be checked, exported and restored from.  A prune elsewhere
    # meanwhile can then take packs from under the reader, which fails (every
    # object is verified as it is read) rather than reading wrong bytes.
    no_lock: bool = False

    def refuse_no_lock(self, operation: str) -> None:
        """UsageError if ``no_lock``: ``operation`` writes to the repository
        (a command that writes asks before its first step, not at its lock)."""
        if self.no_lock:
            raise UsageError(
                f"--no-lock is for commands that only read: {operation} writes to the "
                "repository and must lock it"
            )

    def lock(self, *, exclusive: bool, operation: str, reads_only: bool = False) -> Lock:
        """A shared or exclusive lock, waited for up to ``lock_wait`` seconds.
        After a wait the catalog is synced again (a prune may have moved
        objects meanwhile).  Holding the exclusive one, no writer is half-way
        through a commit: a snapshot whose writer died after moving its head
        is written now (``series.publish_all``), before prune or forget decide
        what snapshots there are.  ``reads_only``: the operation writes
        nothing to the repository, so with ``no_lock`` it goes without one."""
        if self.no_lock:
            if exclusive or not reads_only:
                self.refuse_no_lock(operation)
            return Lock(self.backend, False, operation)  # never taken: writes nothing
        try:
            held = Lock(self.backend, exclusive, operation).acquire(self.lock_wait)
            held.on_stuck = self.notice
        except BackendError as exc:
            if not reads_only:
                raise
            raise BackendError(
                f"{exc} (if this host may only read the repository, --no-lock reads it "
                "without a lock)",
                retryable=exc.retryable,
            ) from exc
        try:
            if held.waited:
                self.sync_catalog()
            if exclusive:
                from coursevault.store.series import publish_all

                if publish_all(self):  # forget decides on the catalog: it must list them
                    self.sync_catalog()
        except BaseException:
            held.release()
            raise
        return held

    # -- catalog sync -----------------------------------------------------------------
    def sync_catalog(self) -> list[str]:
        """Bring the catalog up to date with the repository's index and snapshot
        files; a damaged index file is skipped with a notice, and its name
        returned (catalog_sync.py)."""
        return sync_catalog(self)

    def rebuild_catalog(self) -> dict[str, Any]:
        """Drop the catalog's contents and recreate them from the repository alone.

        A damaged SQLite catalog is deleted and created anew; index files
        that cannot be read are skipped and counted (``repair index``
        rebuilds them from the packs)."""
        try:
            self.catalog.clear_objects()
            self.catalog.clear_snapshots()
        except CatalogDamagedError as exc:
            path = sqlite_path(self.catalog.url)
            if path is None:
                raise
            self.catalog.close()
            reset_damaged(path, exc, self.notice)
            self.catalog = Catalog(self.catalog.url)
            self.catalog.set_meta("repository", self.id)
        damaged = self.sync_catalog()
        return {
            "index_files": len(self.catalog.index_files()),
            "objects": self.catalog.count_objects(),
            "snapshots": len(self.catalog.snapshot_ids()),
            "damaged_index_files": damaged,
        }

    # -- writing ----------------------------------------------------------------------
    def writer(
        self,
        operation: str = "backup",
        *,
        dictionary: ObjectId | None = None,
    ) -> WriteSession:
        """A write session; ``dictionary`` is the dictionary object an earlier
        session of the same series made (see :meth:`WriteSession.make_dictionary`)."""
        return WriteSession(self, operation, dictionary)

    @property
    def stored_inputs(self) -> StoredInputs:
        """What writers remember about their inputs (store/stored_inputs.py)."""
        return StoredInputs(self.catalog)  # the catalog may be replaced (rebuilt)

    def open_args(self) -> dict[str, Any]:
        """What another process passes to :meth:`open` to open this same
        repository with this same catalog (parallel backups: one per worker)."""
        cache = self._cache_folder.parent if self._cache_folder is not None else None
        return {"backend": self.backend, "cache_dir": cache, "catalog_url": self.catalog.url}

    # -- backup runs ------------------------------------------------------------------
    def record_run(self, run: dict[str, Any]) -> None:
        """Log one backup run of one series in the catalog (``coursevault
        runs``); a cache like the rest of it: a rebuilt catalog starts afresh."""
        self.catalog.add_run(run)

    def runs(self, series: str | None = None) -> list[dict[str, Any]]:
        return self.catalog.runs(series)

    # -- statistics -------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        packs = list(pack_files(self.backend))
        index = list(self.backend.list("index/"))
        snaps = self.catalog.snapshots()
        return {
            "repository": self.id,
            "location": self.backend.location(),
            "format_version": self.config["version"],
            "snapshots": len(snaps),
            "courses": len({s.series for s in snaps}),  # the key users know; series, to the store
            "objects": self.catalog.count_objects(),
            "packs": len(packs),
            "pack_bytes": sum(size for _, size in packs),
            "index_files": len(index),
            "index_bytes": sum(size for _, size in index),
        }
