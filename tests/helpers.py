"""Test helpers: reading archive members, building small archives by hand,
and an object sink in memory for the tree builders."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

from coursevault.moodle2.archive import iter_members
from coursevault.moodle2.archive_writer import TgzWriter
from coursevault.store.ids import ObjectId, ObjectType, object_id
from coursevault.store.treecodec import encode_tree

CORPUS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "moodle"
if not CORPUS_DIR.is_dir():  # CI clones main with shared/ beside it; allow an override
    CORPUS_DIR = Path(os.environ.get("COURSEVAULT_CORPUS", CORPUS_DIR))
CORPUS = sorted(CORPUS_DIR.glob("*.mbz"))


def corpus_ids() -> list[str]:
    return [p.name.replace("_tests_fixtures_", ":")[:60] for p in CORPUS]


def read_members(path: str | Path) -> list[tuple[str, bool, bytes]]:
    """(name, is_dir, bytes) of every member, in archive order."""
    _layout, it = iter_members(str(path))
    return [(info.name, info.is_dir, stream.read()) for info, stream in it]


def tar_stream(path: str | Path) -> bytes:
    """The tar inside a .mbz (what ingest promises to reproduce)."""
    with gzip.open(path) as f:
        return f.read()


def logical(members: list[tuple[str, bool, bytes]]) -> dict[str, bytes]:
    """Members by logical path, without the index (compare across containers)."""
    out = {}
    for name, is_dir, data in members:
        p = name[2:] if name.startswith("./") else name
        p = p.rstrip("/")
        if p in ("", ".", ".ARCHIVE_INDEX"):
            continue
        out[p] = b"<dir>" if is_dir else data
    return out


def write_tgz(path: Path, members: list[tuple[str, bytes | None]], mtime: int = 1700000000) -> None:
    """A Moodle-style tgz from (name, bytes or None for a directory)."""
    with open(path, "wb") as f:
        w = TgzWriter(f)
        for name, data in members:
            if data is None:
                w.add(name, True, 0, 1356998400, lambda write: None)
            else:
                w.add(name, False, len(data), mtime, lambda write, d=data: write(d))
        w.close()


def tar_with(path: Path, entries: list[tarfile.TarInfo], payloads: dict[str, bytes]) -> None:
    """A gzip'd tar built by Python's tarfile (for entry types Moodle never writes)."""
    with tarfile.open(path, "w:gz", format=tarfile.USTAR_FORMAT) as tf:
        for ti in entries:
            data = payloads.get(ti.name)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)


MINIMAL_BACKUP = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<moodle_backup>\n  <information>\n'
    b"    <name>t.mbz</name>\n    <moodle_version>2022112800</moodle_version>\n"
    b"    <moodle_release>4.1</moodle_release>\n    <backup_date>1700000000</backup_date>\n"
    b"    <original_site_identifier_hash>abc</original_site_identifier_hash>\n"
    b"    <original_course_id>7</original_course_id>\n  </information>\n</moodle_backup>"
)


class MemSink:
    """An :class:`ObjectSink` in memory: what the tree builders write, counted."""

    def __init__(self) -> None:
        self.objects: dict[ObjectId, tuple[ObjectType, bytes]] = {}
        self.writes = 0

    def put(self, kind: ObjectType, payload: bytes) -> ObjectId:
        oid = object_id(kind, payload)
        if oid not in self.objects:
            self.writes += 1
        self.objects[oid] = (kind, payload)
        return oid

    def put_tree(self, refs: list[ObjectId], body: bytes) -> ObjectId:
        return self.put(ObjectType.TREE, encode_tree(refs, body))

    def get(self, oid: ObjectId) -> tuple[ObjectType, bytes]:
        return self.objects[oid]

    def has(self, oid: ObjectId) -> bool:
        return False


def install_distribution(site: Path, name: str, module: str, entry: str) -> None:
    """A minimal installed distribution in ``site`` (put it on sys.path):
    a module and its dist-info declaring ``entry`` (entry_points.txt)."""
    (site / f"{name}.py").write_text(module)
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry)

