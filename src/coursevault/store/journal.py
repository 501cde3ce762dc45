"""The journal: an append-only record of which index and snapshot files exist.

Without it every command listed and statted all of ``index/`` and
``snapshots/`` to bring its catalog up to date (200,000 files: 3.7 s; on S3
thousands of requests), so a one-course ``log`` cost the whole repository.
With it a catalog remembers the last journal generation it read and reads
only the entries after it: a warm command reads two small files
(``journal/checkpoint`` and the first generation not yet written).

Layout (docs/format.md, "Journal"):

* ``journal/<gen>`` -- ``gen`` a decimal number, zero-padded to 20 digits.
  Each is created once (``Backend.create``: create-if-absent), so two
  writers never share a generation: the loser takes the next one.  An
  *entry* names files added (``+i``/``+s``) and files about to be removed
  (``-i``/``-s``); a *checkpoint* names every live file.
* ``journal/checkpoint`` -- which generation is the newest checkpoint, and
  the journal's id.  Rewritten only under the exclusive lock.
* ``journal/parts/<hash>`` -- a checkpoint naming more than ``PART_LINES``
  files is written in parts (version 2): the generation's file lists its
  parts by BLAKE3 hash, each part holds up to ``PART_LINES`` names.  A site
  of a million snapshots is 67 MB of names: in parts, no reader or writer
  holds more than one part (4.4 MB) at a time.

Ordering, which is what makes a kill at any point harmless:

* an added file is written (durably) *before* its entry: an entry never names
  a file that is not there, except after damage -- and readers load every
  named file, verifying it, before it becomes visible, keeping a name whose
  file is missing as *pending* and trying it again at each sync;
* a removal is journaled *before* the file is deleted, so no catalog keeps a
  file that is gone;
* a writer killed between its file and its entry leaves a file no entry
  names: an index file that nothing references (its snapshot was never
  committed), or a snapshot whose record its course's ref still holds -- the
  next writer of the course (or prune, forget) journals it again.  ``check``
  reports any such file, ``repair journal`` writes a checkpoint from a full
  listing.

A repository without ``journal/checkpoint`` (written before the journal
existed) is synced by listing, as before; ``init`` starts a journal, prune
and ``repair journal`` start one in an older repository.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import blake3

from coursevault.errors import CorruptionError
from coursevault.store.backend import Backend

POINTER_KEY = "journal/checkpoint"
PART_PREFIX = "journal/parts/"
GEN_DIGITS = 20
MAGIC = "cvjournal"
VERSION = 1
PARTS_VERSION = 2  # a checkpoint in parts, and its parts
PART_LINES = 65_536  # names a checkpoint holds in one file (4.4 MB); more go in parts
ENTRY, CHECKPOINT, PART = "entry", "checkpoint", "part"
INDEX, SNAPSHOT = "i", "s"  # what a name is: an index file or a snapshot record
HEX64 = re.compile(r"[0-9a-f]{64}")
JOURNAL_ID = re.compile(r"[0-9a-f]{32}")
REPAIR = "`coursevault repair journal` writes it afresh from a listing"


class JournalDamagedError(CorruptionError):
    """A journal file does not parse or does not match its checksum."""


def _read(backend: Backend, key: str) -> bytes:
    """A journal file's bytes.  An encrypted repository's file that fails
    authentication (a flipped byte, a truncation) is a damaged journal file
    as a plain one whose checksum fails is: commands then list the
    repository, check names it and ``repair journal`` writes the journal
    afresh.  It stopped every command of an encrypted repository,
    ``repair journal`` too."""
    try:
        return backend.read(key)
    except JournalDamagedError:
        raise
    except CorruptionError as exc:
        raise JournalDamagedError(str(exc)) from exc


def gen_key(gen: int) -> str:
    return f"journal/{gen:0{GEN_DIGITS}d}"


def part_key(digest: str) -> str:
    return f"{PART_PREFIX}{digest}"


def _gen_of(key: str) -> int | None:
    """The generation a ``journal/`` key is, None for the pointer and parts."""
    name = key.rsplit("/", 1)[1]
    return int(name) if len(name) == GEN_DIGITS and name.isdigit() else None


@dataclass(frozen=True)
class Pointer:
    """What ``journal/checkpoint`` holds."""

    journal: str  # 32 hex: a journal started afresh gets a new id
    gen: int  # the newest checkpoint's generation


@dataclass
class Entry:
    """One journal file: names added and removed, by kind (INDEX, SNAPSHOT)."""

    journal: str
    gen: int
    kind: str = ENTRY
    added: dict[str, list[str]] = field(default_factory=lambda: {INDEX: [], SNAPSHOT: []})
    removed: dict[str, list[str]] = field(default_factory=lambda: {INDEX: [], SNAPSHOT: []})

    def encode(self) -> bytes:
        lines = [f"{MAGIC} {VERSION} {self.journal} {self.gen} {self.kind}\n"]
        for sign, names in (("-", self.removed), ("+", self.added)):
            for what in (INDEX, SNAPSHOT):
                lines.extend(f"{sign}{what} {name}\n" for name in names[what])
        body = "".join(lines).encode()
        return body + f"end {blake3.blake3(body).hexdigest()}\n".encode()


def decode_entry(data: bytes, gen: int) -> Entry:
    """Parse a journal file, checking its checksum and that it is generation ``gen``."""
    journal, kind, lines = entry_lines(data, gen)
    entry = Entry(journal, gen, kind)
    for sign, what, name in lines:
        (entry.added if sign == "+" else entry.removed)[what].append(name)
    return entry


Line = tuple[str, str, str]  # sign ("+" or "-"), what (INDEX or SNAPSHOT), hex name
PartReader = Callable[[str], bytes]  # a part's bytes by its hash


def entry_lines(
    data: bytes, gen: int, parts: PartReader | None = None
) -> tuple[str, str, Iterator[Line]]:
    """(journal id, kind, its lines one at a time) of a journal file whose
    checksum and header are checked here; a bad line raises as it is met.
    A checkpoint names every live file -- 160,000 snapshots' names are 26 MB
    as lists of str -- so ``check`` reads it line by line; one in parts
    (version 2) is read a part at a time through ``parts``."""
    where = gen_key(gen)
    version, journal, found, kind, raw = _open(data, where)
    if kind not in (ENTRY, CHECKPOINT) or (version == PARTS_VERSION and kind != CHECKPOINT):
        raise JournalDamagedError(f"{where}: not a journal file of version {VERSION}")
    if found != str(gen):
        raise JournalDamagedError(f"{where}: names generation {found} of journal {journal}")
    if version == VERSION:
        return journal, kind, _names(raw, where, kind)
    if parts is None:
        raise JournalDamagedError(f"{where}: a checkpoint in parts, read without its parts")
    return journal, kind, _part_lines(raw, where, journal, parts)


def _open(data: bytes, where: str) -> tuple[int, str, str, str, Iterator[str]]:
    """(version, journal id, generation, kind, its lines as text) of a
    journal file or part, its checksum checked."""
    cut = data.rfind(b"end ", 0, max(len(data) - 1, 0))
    if cut < 0 or not data.endswith(b"\n") or (cut and data[cut - 1 : cut] != b"\n"):
        raise JournalDamagedError(f"{where}: truncated (no checksum line)")
    if blake3.blake3(memoryview(data)[:cut]).hexdigest().encode() != data[cut + 4 : -1]:
        raise JournalDamagedError(f"{where}: does not match its checksum")
    first = data.find(b"\n", 0, cut)
    try:
        magic, version, journal, found, kind = data[:first].decode("ascii").split(" ")
    except (UnicodeDecodeError, ValueError):
        raise JournalDamagedError(f"{where}: bad header") from None
    if first < 0 or magic != MAGIC or version not in (str(VERSION), str(PARTS_VERSION)):
        raise JournalDamagedError(f"{where}: not a journal file of version {VERSION}")
    if not JOURNAL_ID.fullmatch(journal):
        raise JournalDamagedError(f"{where}: names generation {found} of journal {journal}")

    def lines() -> Iterator[str]:
        start = first + 1
        while start < cut:
            end = data.find(b"\n", start, cut)
            raw = data[start:end]
            start = end + 1
            try:
                yield raw.decode("ascii")
            except UnicodeDecodeError:
                raise JournalDamagedError(f"{where}: bad line {raw[:80]!r}") from None

    return int(version), journal, found, kind, lines()


def _names(raw: Iterator[str], where: str, kind: str) -> Iterator[Line]:
    for line in raw:
        sign, what, name = line[:1], line[1:2], line[3:]
        if sign not in "+-" or what not in (INDEX, SNAPSHOT) or not HEX64.fullmatch(name):
            raise JournalDamagedError(f"{where}: bad line {line[:80]!r}")
        if kind != ENTRY and sign == "-":
            raise JournalDamagedError(f"{where}: a checkpoint that removes files")
        yield sign, what, name


def _part_lines(raw: Iterator[str], where: str, journal: str, parts: PartReader) -> Iterator[Line]:
    """The names of a checkpoint in parts: each part read when the one
    before it is done, checked against the hash its checkpoint gives."""
    for number, line in enumerate(raw, 1):
        digest = line[2:]
        if line[:2] != "p " or not HEX64.fullmatch(digest):
            raise JournalDamagedError(f"{where}: bad line {line[:80]!r}")
        key = part_key(digest)
        try:
            data = parts(digest)
        except FileNotFoundError:
            raise JournalDamagedError(f"{where}: its part {key} is missing") from None
        if blake3.blake3(data).hexdigest() != digest:
            raise JournalDamagedError(f"{key}: does not match its name")
        _version, owner, ordinal, kind, names = _open(data, key)
        if kind != PART or owner != journal or ordinal != str(number):
            raise JournalDamagedError(f"{key}: is not part {number} of {where}")
        yield from _names(names, key, PART)


def _part_reader(backend: Backend) -> PartReader:
    return lambda digest: _read(backend, part_key(digest))


def read_pointer(backend: Backend) -> Pointer | None:
    """The journal's pointer; None when the repository has no journal."""
    try:
        data = _read(backend, POINTER_KEY)
    except FileNotFoundError:
        return None
    try:
        magic, version, journal, gen = data.decode("ascii").split()
        pointer = Pointer(journal, int(gen))
    except (UnicodeDecodeError, ValueError):
        raise JournalDamagedError(f"{POINTER_KEY}: unreadable") from None
    if magic != f"{MAGIC}-checkpoint" or version != str(VERSION) or pointer.gen < 1:
        raise JournalDamagedError(f"{POINTER_KEY}: not a journal pointer of version {VERSION}")
    if not JOURNAL_ID.fullmatch(journal):
        raise JournalDamagedError(f"{POINTER_KEY}: bad journal id")
    return pointer


def read_entry(backend: Backend, pointer: Pointer, gen: int) -> Entry | None:
    """Generation ``gen`` of the journal ``pointer`` names; None if not (yet) written."""
    try:
        data = _read(backend, gen_key(gen))
    except FileNotFoundError:
        return None
    entry = decode_entry(data, gen)
    if entry.journal != pointer.journal:
        raise JournalDamagedError(f"{gen_key(gen)}: belongs to journal {entry.journal}")
    return entry


def read_entry_lines(
    backend: Backend, pointer: Pointer, gen: int
) -> tuple[str, Iterator[Line]] | None:
    """:func:`read_entry` as (kind, its lines one at a time): a checkpoint
    names every live file, and a catalog crossing one streams it."""
    try:
        data = _read(backend, gen_key(gen))
    except FileNotFoundError:
        return None
    journal, kind, lines = entry_lines(data, gen, _part_reader(backend))
    if journal != pointer.journal:
        raise JournalDamagedError(f"{gen_key(gen)}: belongs to journal {journal}")
    return kind, lines


def append(
    backend: Backend,
    known: tuple[str, int] | None,
    *,
    added: Iterable[tuple[str, str]] = (),
    removed: Iterable[tuple[str, str]] = (),
) -> int | None:
    """Journal (kind, name) pairs added (already durable) or about to be
    removed, in the first free generation after the last the caller read
    (``known``: journal id and generation, from its catalog); returns it, or
    None when the repository has no journal.

    Creating the file is the whole commit: a generation is taken by exactly
    one writer, and a file either exists whole or not at all."""
    pointer = read_pointer(backend)
    if pointer is None:
        return None
    entry = Entry(pointer.journal, 0)
    for what, name in added:
        entry.added[what].append(name)
    for what, name in removed:
        entry.removed[what].append(name)
    after = known[1] if known is not None and known[0] == pointer.journal else 0
    gen = max(after, pointer.gen) + 1
    while True:
        while backend.exists(gen_key(gen)):  # written by others since we read
            gen += 1
        entry.gen = gen
        if backend.create(gen_key(gen), entry.encode()):
            return gen
        gen += 1


def journal_head(backend: Backend) -> int:
    """The highest generation in ``journal/`` (by listing: exclusive-lock
    callers only), 0 if none."""
    head = 0
    for key, _size in backend.list("journal/"):
        gen = _gen_of(key)
        if gen is not None:
            head = max(head, gen)
    return head


def write_checkpoint(
    backend: Backend,
    index: Iterable[str],
    snapshots: Iterable[str],
    *,
    compact: bool = True,
    fresh: bool = False,
    presorted: bool = False,
) -> Pointer:
    """Write a checkpoint naming every live index file and snapshot, point
    ``journal/checkpoint`` at it, then (``compact``) delete the generations
    before it and the parts it does not use.  Only under the exclusive lock
    (or at ``init``): no writer may be between writing a file and
    journaling it.

    Readers behind the new checkpoint reconcile with it; a reader replaying
    while older generations are deleted stops early and catches up on its
    next sync (it reads the pointer first).  ``fresh`` starts a new journal
    id, so that no catalog trusts a position it read from the old one (a
    repair: generations may have been lost)."""
    try:
        old = None if fresh else read_pointer(backend)
    except JournalDamagedError:
        old = None
    journal = old.journal if old is not None else secrets.token_hex(16)
    lines, parts = _checkpoint_body(backend, journal, index, snapshots, presorted)
    version = PARTS_VERSION if parts else VERSION
    gen = journal_head(backend) + 1
    while True:
        head = f"{MAGIC} {version} {journal} {gen} {CHECKPOINT}\n".encode()
        body = head + lines
        data = body + f"end {blake3.blake3(body).hexdigest()}\n".encode()
        del body
        if backend.create(gen_key(gen), data):  # wrappers (sealing, S3) take bytes
            break
        gen += 1  # taken by another: the same names under the next generation
    del data, lines
    pointer = Pointer(journal, gen)
    backend.write(POINTER_KEY, f"{MAGIC}-checkpoint {VERSION} {journal} {gen}\n".encode())
    if compact:
        keep = {part_key(digest) for digest in parts}
        for key, _size in list(backend.list("journal/")):
            older = _gen_of(key)
            if (older is not None and older < gen) or (
                key.startswith(PART_PREFIX) and key not in keep
            ):
                backend.delete(key)
    return pointer


def _checkpoint_body(
    backend: Backend, journal: str, index: Iterable[str], snapshots: Iterable[str], presorted: bool
) -> tuple[bytes, list[str]]:
    """A checkpoint's lines (``presorted``: the caller sorted the names, on
    disk), and the hashes of the parts written durably for it when it names
    more than PART_LINES files -- its lines are then those hashes.  Built as
    bytes, 66 a name, never more than a part's at once."""
    chunk = bytearray()
    count = 0
    parts: list[str] = []

    def flush() -> None:
        body = f"{MAGIC} {PARTS_VERSION} {journal} {len(parts) + 1} {PART}\n".encode() + chunk
        data = body + f"end {blake3.blake3(body).hexdigest()}\n".encode()
        digest = blake3.blake3(data).hexdigest()
        backend.create(part_key(digest), data)  # there already: these very bytes
        parts.append(digest)
        chunk.clear()

    for what, listed in ((INDEX, index), (SNAPSHOT, snapshots)):
        for name in listed if presorted else sorted(listed):
            if count == PART_LINES:
                flush()
                count = 0
            chunk += f"+{what} {name}\n".encode()
            count += 1
    if not parts:
        return bytes(chunk), parts
    flush()
    return "".join(f"p {digest}\n" for digest in parts).encode(), parts


@dataclass
class JournalState:
    """What replaying the journal from its checkpoint says (for ``check``)."""

    pointer: Pointer
    head: int  # the last generation read
    live: dict[str, set[str]]  # named as added (by a checkpoint or an entry) and not removed since
    removed: dict[
        str, set[str]
    ]  # named as removed last: the file may linger until its deleter ends


def replay(backend: Backend) -> JournalState | None:
    """Replay the journal from the newest checkpoint; None without a journal.
    Raises JournalDamagedError on any damage (a pointer, checkpoint or entry
    that does not parse, a checkpoint that is gone)."""
    live: dict[str, set[str]] = {INDEX: set(), SNAPSHOT: set()}
    removed: dict[str, set[str]] = {INDEX: set(), SNAPSHOT: set()}

    def restart() -> None:
        for what in (INDEX, SNAPSHOT):
            live[what].clear()
            removed[what].clear()

    def apply(sign: str, what: str, name: str) -> None:
        (live if sign == "+" else removed)[what].add(name)
        (removed if sign == "+" else live)[what].discard(name)

    where = replay_each(backend, restart, apply)
    if where is None:
        return None
    return JournalState(where[0], where[1], live, removed)


def replay_each(
    backend: Backend, restart: Callable[[], None], apply: Callable[[str, str, str], None]
) -> tuple[Pointer, int] | None:
    """Replay the journal from the newest checkpoint through two calls:
    ``restart()`` at each checkpoint (forget what was applied), then
    ``apply(sign, what, name)`` for each of its names ("+"), and for each
    later entry's removals ("-") then additions ("+").  A checkpoint's names
    are handed on one at a time, never held.  Returns (pointer, the last
    generation read); None without a journal.  Raises JournalDamagedError as
    :func:`replay` does."""
    pointer = read_pointer(backend)
    if pointer is None:
        return None
    gen = pointer.gen
    first = True
    while True:
        try:
            data = _read(backend, gen_key(gen))
        except FileNotFoundError:
            if first:
                raise JournalDamagedError(f"{gen_key(gen)}: the checkpoint is missing") from None
            return pointer, gen - 1
        journal, kind, lines = entry_lines(data, gen, _part_reader(backend))
        if journal != pointer.journal:
            raise JournalDamagedError(f"{gen_key(gen)}: belongs to journal {journal}")
        if first and kind != CHECKPOINT:
            raise JournalDamagedError(f"{gen_key(gen)}: the checkpoint is missing")
        first = False
        if kind == CHECKPOINT:
            restart()
            for sign, what, name in lines:
                apply(sign, what, name)
        else:  # removals first, then a second pass for additions
            for line in lines:
                if line[0] == "-":
                    apply(*line)
            for line in entry_lines(data, gen)[2]:
                if line[0] == "+":
                    apply(*line)
        del data
        gen += 1
