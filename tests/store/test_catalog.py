"""The SQLite catalog, opened without SQLAlchemy, is the catalog SQLAlchemy declares."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from coursevault.store.catalog import Catalog, SnapshotRow
from coursevault.store.catalog_schema import metadata
from coursevault.store.ids import ObjectType
from coursevault.store.pack import Location


def _schema(path: Path) -> dict[str, object]:
    """Each table's columns (name, type, not null, primary key), indexes and rowid-ness."""
    conn = sqlite3.connect(path)
    out: dict[str, object] = {}
    for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"):
        cols = [(c[1], c[2], c[3], c[5]) for c in conn.execute(f"PRAGMA table_info({name})")]
        indexes = sorted(
            (i[1], i[2], [c[2] for c in conn.execute(f"PRAGMA index_info({i[1]})")])
            for i in conn.execute(f"PRAGMA index_list({name})")
            if not i[1].startswith("sqlite_autoindex")
        )
        out[name] = (cols, indexes, "WITHOUT ROWID" in sql.upper())
    conn.close()
    return out


def test_the_sqlite_tables_are_those_sqlalchemy_declares(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'sa.sqlite'}")
    metadata.create_all(engine)
    engine.dispose()
    Catalog(f"sqlite:///{tmp_path / 'raw.sqlite'}").close()
    ours, theirs = _schema(tmp_path / "raw.sqlite"), _schema(tmp_path / "sa.sqlite")
    assert ours == theirs
    assert set(ours) == {t.name for t in metadata.sorted_tables}


def test_a_catalog_sqlalchemy_created_opens_and_works(tmp_path: Path) -> None:
    """Catalogs of earlier versions were created through SQLAlchemy."""
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    engine.dispose()
    cat = Catalog(url)
    loc = Location(ObjectType.TREE, b"p" * 32, 4096, 300, 10, 20)
    cat.add_index_file("idx1", [(b"o" * 32, loc)])
    cat.add_snapshot(SnapshotRow("s1", "course-1", "2026-11-20T00:00:00Z", 1.0, "ab", {"x": 1}))
    cat.set_ref("heads/course-1", "s1")
    cat.set_meta("repository", "r1")
    cat.close()
    again = Catalog(url)
    assert again.lookup(b"o" * 32) == loc
    assert again.index_files() == {"idx1"}
    assert [s.id for s in again.snapshots("course-1")] == ["s1"]
    assert again.refs() == {"heads/course-1": "s1"}
    assert again.get_meta("repository") == "r1"
    again.close()


def test_a_reader_can_keep_fewer_catalog_pages(tmp_path: Path) -> None:
    """A SQLite catalog keeps 4 MiB of pages unless a reader that looks each
    object up once (restore --db) asks for less; lookups still answer."""
    cat = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    loc = Location(ObjectType.TREE, b"p" * 32, 4096, 300, 10, 20)
    cat.add_index_file("idx1", [(b"o" * 32, loc)])
    assert cat._raw.execute("PRAGMA cache_size").fetchone()[0] == -4096
    cat.limit_cache(512)
    assert cat._raw.execute("PRAGMA cache_size").fetchone()[0] == -512
    assert cat.lookup(b"o" * 32) == loc
    cat.close()



def test_batched_lookups_prepare_a_few_statements_whatever_the_lengths(
    tmp_path: Path,
) -> None:
    """lookup_many pads its IN lists to powers of two: sqlite3 keeps each
    statement text it prepared (128 of them), and one per batch length --
    a backup asks about each block's new objects, any number of them --
    held 9.8 MiB of compiled IN lists.  The answers are those asked."""
    import os

    cat = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    stored = {os.urandom(32): Location(ObjectType.TREE, b"p" * 32, 4096, 300, i, 20)
              for i in range(700)}
    cat.add_index_file("idx1", stored.items())
    ids = list(stored)
    texts: set[str] = set()
    cat._raw.set_trace_callback(texts.add)
    for n in range(1, 1100, 7):
        strangers = [os.urandom(32) for _ in range(n // 3)]
        asked = ids[: n - len(strangers)] + strangers + ids[:2]  # twice asked, once found
        assert cat.has_many(asked) == set(ids[: n - len(strangers)]) | set(ids[:2])
        found = cat.lookup_many(asked)
        assert found == {oid: stored[oid] for oid in asked if oid in stored}
    queries = {t for t in texts if t.startswith("SELECT")}
    lengths = {t.count("x'") for t in queries}  # expanded: each id a blob literal
    assert len(lengths) <= 7 and lengths <= {8, 16, 32, 64, 128, 256, 512}, sorted(lengths)
    cat.close()

def test_opening_a_sqlite_catalog_does_not_import_sqlalchemy(tmp_path: Path) -> None:
    """SQLAlchemy's import was 0.18 s of every command's 0.45 s start-up."""
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    code = (
        "import sys\n"
        "from coursevault.store.catalog import Catalog\n"
        f"Catalog({url!r}).close()\n"
        "import coursevault.cli.app\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_other_sqlite_urls_go_through_sqlalchemy_and_work(tmp_path: Path) -> None:
    for url in (
        f"sqlite+pysqlite:///{tmp_path / 'a.sqlite'}",
        f"sqlite:///{tmp_path / 'b.sqlite'}?timeout=30",
    ):
        cat = Catalog(url)
        cat.set_meta("k", "v")
        assert cat.get_meta("k") == "v"
        cat.close()


def test_a_catalog_of_the_first_format_is_read_again_from_the_index_files(
    tmp_path: Path,
) -> None:
    """Its tables named each entry's pack by its id; they are dropped, and the
    entries read again from the repository's index files."""
    from coursevault.store.backend import LocalBackend
    from coursevault.store.repository import Repository

    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend)
    repo = Repository.open(backend, cache_dir=tmp_path / "cache")
    with repo.writer("test") as session:
        oid = session.put(ObjectType.BLOB, b"kept across catalog formats")
        session.commit()
    loc = repo.locate(oid)
    repo.close()
    [path] = (tmp_path / "cache").rglob("catalog.sqlite")
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE cv_locations")
    conn.execute("DROP TABLE cv_indexed")
    conn.execute(
        "CREATE TABLE cv_objects (id BLOB NOT NULL, type SMALLINT NOT NULL, pack BLOB NOT NULL,"
        " block_offset BIGINT NOT NULL, block_length INTEGER NOT NULL,"
        ' "offset" INTEGER NOT NULL, length INTEGER NOT NULL, PRIMARY KEY (id)) WITHOUT ROWID'
    )
    conn.execute("CREATE TABLE cv_index_files (name VARCHAR(80) NOT NULL, PRIMARY KEY (name))")
    conn.commit()
    conn.close()
    again = Repository.open(backend, cache_dir=tmp_path / "cache")
    assert again.locate(oid) == loc
    assert again.get(oid)[1] == b"kept across catalog formats"
    again.close()
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "cv_objects" not in tables and "cv_index_files" not in tables


def test_pack_numbers_stay_when_another_process_reads_the_index_again(tmp_path: Path) -> None:
    """A reader keeps the catalog's pack numbers in memory; a process that
    starts the entries over (after a prune elsewhere) must not renumber."""
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    p1, p2 = b"1" * 32, b"2" * 32
    loc1 = Location(ObjectType.TREE, p1, 0, 10, 0, 5)
    loc2 = Location(ObjectType.BLOB, p2, 0, 10, 0, 5)
    reader, other = Catalog(url), Catalog(url)
    reader.add_index_file("a", [(b"a" * 32, loc1)])
    reader.add_index_file("b", [(b"b" * 32, loc2)])
    assert reader.lookup(b"a" * 32) == loc1  # numbers now held in memory
    other.clear_objects()
    other.add_index_file("b", [(b"b" * 32, loc2)])  # the other order this time
    other.add_index_file("a", [(b"a" * 32, loc1)])
    assert reader.lookup(b"a" * 32) == loc1 and reader.lookup(b"b" * 32) == loc2
    assert dict(other.iter_objects()) == {b"a" * 32: loc1, b"b" * 32: loc2}
    reader.close()
    other.close()
