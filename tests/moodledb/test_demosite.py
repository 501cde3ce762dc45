"""``demo-site``: what a size-S site holds, that a seed fixes it on every database,
what a churn night changes, and how bad input is refused."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from coursevault.cli.app import main
from coursevault.moodledb import demosite
from coursevault.moodledb.demochurn import churn_demo_site
from coursevault.moodledb.demosite import build_demo_site
from coursevault.moodledb.schema import moodle_metadata

Dump = dict[str, list[tuple[Any, ...]]]
# What size S makes per course: tool_generator's S (gen_s) plus the extras
S_COUNTS = {
    "course": 2,  # the site course and one demo course
    "user": 102,  # guest, admin, 100 generated users
    "course_modules": 72,
    "course_sections": 11,
    "assign": 10,
    "forum": 1,
    "forum_discussions": 10,
    "forum_posts": 20,
    "page": 50,
    "resource": 3,
    "label": 3,
    "url": 2,
    "folder": 1,
    "glossary": 1,
    "glossary_entries": 20,
    "choice": 1,
    "choice_options": 4,
    "enrol": 3,
    "user_enrolments": 100,
    "role_assignments": 100,
    "grade_items": 11,
}
NIGHT = 1_790_000_000  # a fixed time for nights compared row for row
CHURNED = {  # tables a night may write, and nothing else
    "assign_grades", "assign_submission", "assignfeedback_comments",
    "assignsubmission_onlinetext", "course", "files", "forum_discussions", "forum_posts",
    "grade_grades", "logstore_standard_log", "page", "resource", "config_plugins",
}  # fmt: skip


def dump(url: str) -> Dump:
    """Every row of every non-empty table, by id; numbers compared as numbers."""
    engine = sa.create_engine(url)
    metadata = moodle_metadata()
    out: Dump = {}
    with engine.connect() as conn:
        for name, table in metadata.tables.items():
            rows = conn.execute(sa.select(table).order_by(table.c.id)).all()
            if rows:
                out[name[4:]] = [tuple(_plain(v) for v in row) for row in rows]
    engine.dispose()
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):  # 1000.00000 on PostgreSQL is 1000 on SQLite
        return value.normalize() + 0
    return value


@pytest.fixture(scope="module")
def site_s(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("site-s")
    build_demo_site(f"sqlite:///{root}/site.db", root / "data", "S", seed=7)
    return root / "site.db", root / "data"


def _copy(site: tuple[Path, Path], to: Path) -> tuple[str, Path]:
    shutil.copytree(site[1], to / "data")
    shutil.copy(site[0], to / "site.db")
    return f"sqlite:///{to}/site.db", to / "data"


def test_size_s_makes_what_the_guide_says(site_s: tuple[Path, Path]) -> None:
    rows = dump(f"sqlite:///{site_s[0]}")
    for table, count in S_COUNTS.items():
        assert len(rows[table]) == count, table
    engine = sa.create_engine(f"sqlite:///{site_s[0]}")
    with engine.connect() as conn:
        config = dict(conn.execute(sa.text("SELECT name, value FROM mdl_config")).all())
        assert config["version"] == "2024100705.01" and len(config["siteidentifier"]) > 30
        plugins = conn.execute(
            sa.text(
                "SELECT value FROM mdl_config_plugins WHERE plugin = 'mod_forum' AND name = 'version'"
            )
        ).scalar()
        assert plugins and plugins.startswith("2024")
    engine.dispose()


def test_contexts_sections_and_files_hang_together(site_s: tuple[Path, Path]) -> None:
    engine = sa.create_engine(f"sqlite:///{site_s[0]}")
    with engine.connect() as conn:
        contexts = {r.id: r for r in conn.execute(sa.text("SELECT * FROM mdl_context"))}
        for ctx in contexts.values():
            parts = [int(p) for p in ctx.path.split("/")[1:]]
            assert parts[-1] == ctx.id and len(parts) == ctx.depth
            assert all(p in contexts for p in parts)
        cms = conn.execute(sa.text("SELECT id, section FROM mdl_course_modules")).all()
        sections = conn.execute(sa.text("SELECT id, sequence FROM mdl_course_sections")).all()
        listed = {int(cm): s.id for s in sections for cm in s.sequence.split(",") if cm}
        assert listed == {cm.id: cm.section for cm in cms}
        files = conn.execute(sa.text("SELECT contenthash, filename, filesize FROM mdl_files")).all()
    engine.dispose()
    for f in files:
        if f.filename == ".":
            continue
        content = (
            site_s[1] / "filedir" / f.contenthash[:2] / f.contenthash[2:4] / f.contenthash
        ).read_bytes()
        assert hashlib.sha1(content).hexdigest() == f.contenthash and len(content) == f.filesize


def test_a_seed_fixes_the_site(site_s: tuple[Path, Path], tmp_path: Path) -> None:
    build_demo_site(f"sqlite:///{tmp_path}/same.db", tmp_path / "same", "S", seed=7)
    build_demo_site(f"sqlite:///{tmp_path}/other.db", tmp_path / "other", "S", seed=8)
    first = dump(f"sqlite:///{site_s[0]}")
    assert dump(f"sqlite:///{tmp_path}/same.db") == first
    assert dump(f"sqlite:///{tmp_path}/other.db") != first
    assert sorted(p.name for p in (tmp_path / "same").rglob("*") if p.is_file()) == sorted(
        p.name for p in site_s[1].rglob("*") if p.is_file()
    )


def test_churn_changes_only_what_it_says(site_s: tuple[Path, Path], tmp_path: Path) -> None:
    url, data = _copy(site_s, tmp_path)
    before = dump(url)
    started = int(time.time())
    report = churn_demo_site(url, data, when=NIGHT)
    after = dump(url)
    assert report.night == 1
    changed = {t for t in set(before) | set(after) if before.get(t) != after.get(t)}
    assert changed <= CHURNED
    for table, n in report.changes.items():
        old, new = set(before.get(table, [])), set(after.get(table, []))
        assert len(new - old) == n, table  # rows added or rewritten
        assert len(old - new) <= n, table
    assert len(after["files"]) == len(before["files"]) + 1
    assert len(after["forum_posts"]) > len(before["forum_posts"])
    edited = [p for p in after["page"] if p not in before["page"]]
    assert len(edited) == 1 and edited[0][-2] == 1  # revision bumped
    # the same night on the same site is the same night
    url2, data2 = _copy(site_s, tmp_path / "again")
    churn_demo_site(url2, data2, when=NIGHT)
    assert dump(url2) == after
    # by default a night happens now, so that backup --skip-unmodified sees it
    assert churn_demo_site(url, data).night == 2
    ended = int(time.time())
    logs = dump(url)["logstore_standard_log"]
    assert min(row[-4] for row in logs) >= NIGHT  # the first night's, at its time
    assert max(row[-4] for row in logs) >= started
    # and ends by then: its log lines ran up to 100 s past it, so a backup
    # right after the night was not the last (--skip-unmodified did it again)
    assert max(row[-4] for row in logs) <= ended


def test_churn_leaves_a_course_it_did_not_make_alone(
    site_s: tuple[Path, Path], tmp_path: Path
) -> None:
    """A course the demo did not make (a restore of one activity, without
    users or the demo's modules) is left as it is: the night churned the
    demo's course and failed as an internal error (IndexError: Cannot
    choose from an empty sequence) over the other."""
    url, data = _copy(site_s, tmp_path)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO mdl_course (id, category, fullname, shortname) "
                             "VALUES (50, 1, 'restored', 'restored')"))
    engine.dispose()
    report = churn_demo_site(url, data, when=NIGHT)
    assert report.courses == [2]


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_servers_hold_the_same_site(
    kind: str, site_s: tuple[Path, Path], scratch_database: Callable[[str], str], tmp_path: Path
) -> None:
    url = scratch_database(kind)
    report = build_demo_site(url, tmp_path / "data", "S", seed=7)
    assert report.courses == [2] and report.users == 100
    on_server, on_sqlite = dump(url), dump(f"sqlite:///{site_s[0]}")
    assert sorted(on_server) == sorted(on_sqlite)
    for table in on_sqlite:
        assert on_server[table] == on_sqlite[table], table
    expected = {
        (name, str(ix.name), tuple(c.name for c in ix.columns), bool(ix.unique))
        for name, table in moodle_metadata().tables.items()
        for ix in table.indexes
    }
    engine = sa.create_engine(url)
    indexes = sa.inspect(engine).get_multi_indexes()
    engine.dispose()
    made = {
        (table, str(ix["name"]), tuple(ix["column_names"]), bool(ix["unique"]))
        for (_, table), found in indexes.items()
        for ix in found
    }
    assert made == expected  # the indexes made inside CREATE TABLE on MariaDB too
    churned = churn_demo_site(url, tmp_path / "data")
    assert churned.changes["forum_posts"] >= 3
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a later insert without an id (Moodle's) does not collide
        conn.execute(
            sa.text(
                "INSERT INTO mdl_forum_posts (discussion, subject, message) VALUES (1, 'x', 'y')"
            )
        )
    engine.dispose()


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["demo-site", "--dataroot", str(tmp_path / "data"), *args])
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        return code, err

    code, err = run("--db", "postgresql+psycopg://postgres@127.0.0.1:1/none")
    assert code == 13 and "connection" in err.lower()
    code, err = run("--db", "no-such-scheme://x")
    assert code == 13 and "database URL" in err
    other = tmp_path / "other.db"
    engine = sa.create_engine(f"sqlite:///{other}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE invoices (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    code, err = run("--db", f"sqlite:///{other}")
    assert code == 2 and "not empty and holds no Moodle site" in err
    code, err = run("--db", f"sqlite:///{other}", "--churn")
    assert code == 13 and "no Moodle site" in err
    code, err = run("--db", f"sqlite:///{tmp_path}/new.db", "--size", "XL")
    assert code == 2 and "S or M" in err
    (tmp_path / "a-file").write_text("")
    code, err = run("--db", f"sqlite:///{tmp_path}/a-file/site.db")
    assert code == 2 and "database folder" in err


def test_the_command_prints_what_it_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path}/site.db"
    assert main(["demo-site", "--db", db, "--dataroot", str(tmp_path / "d"), "--json"]) == 0
    assert '"course_modules": 72' in capsys.readouterr().out
    assert main(["demo-site", "--db", db, "--dataroot", str(tmp_path / "d"), "--churn"]) == 0
    assert "night 1" in capsys.readouterr().out
    assert main(["demo-site", "--db", db, "--dataroot", str(tmp_path / "d")]) == 2
    assert "already holds a Moodle site" in capsys.readouterr().err
    # refused: the dataroot it would have filled is not made either
    assert main(["demo-site", "--db", db, "--dataroot", str(tmp_path / "new" / "d")]) == 2
    assert "already holds a Moodle site" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    # a churn into a dataroot that is not the site's: refused, nothing written
    assert main(["demo-site", "--db", db, "--dataroot", str(tmp_path / "typo"), "--churn"]) == 13
    assert "no filedir/" in capsys.readouterr().err and not (tmp_path / "typo").exists()
    assert main(["demo-site", "--db", db, "--dataroot", str(tmp_path / "d"), "--churn"]) == 0
    assert "night 2" in capsys.readouterr().out
    # what one kind of run would ignore is refused, and the site stays as it is
    site = ["demo-site", "--db", db, "--dataroot", str(tmp_path / "d")]
    for extra, says in (
        (["--churn", "--size", "M"], "--size shapes a new demo site"),
        (["--churn", "--seed", "1"], "--seed shapes a new demo site"),
        (["--churn", "--courses", "3"], "--courses shapes a new demo site"),
        (["--time", "2026-01-01T00:00:00Z"], "use it with --churn"),
    ):
        assert main([*site, *extra]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err
    assert main([*site, "--churn", "--json"]) == 0
    assert '"night": 3' in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb"])
def test_a_failed_build_leaves_the_database_empty(
    kind: str,
    scratch_database: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database empty again, and the file store as it was: the contents
    the first course wrote (944 files for a SIGTERM at 8 s) stayed, named
    by no row; a content there before stays."""
    url = f"sqlite:///{tmp_path}/site.db" if kind == "sqlite" else scratch_database(kind)
    before = tmp_path / "data" / "filedir" / "ab" / "cd" / ("abcd" + "0" * 36)
    before.parent.mkdir(parents=True)
    before.write_bytes(b"there before")
    build = demosite.CourseBuilder.build
    built: list[int] = []

    def fail_at_the_second(self: object, *args: object, **kwargs: object) -> int:
        if built:
            raise RuntimeError("the disk filled up")
        built.append(1)
        return build(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(demosite.CourseBuilder, "build", fail_at_the_second)
    with pytest.raises(RuntimeError):
        build_demo_site(url, tmp_path / "data", "S", courses=2)
    assert built
    engine = sa.create_engine(url)
    assert sa.inspect(engine).get_table_names() == []
    engine.dispose()
    left = list((tmp_path / "data" / "filedir").rglob("*"))
    assert sorted(left) == [before.parent.parent, before.parent, before]  # no folder it made


def test_a_demo_site_of_more_courses_than_a_demo_needs_is_refused(tmp_path: Path) -> None:
    """--courses 99999999999999999999 wrote 13 GB of contents before it failed."""
    from coursevault.errors import BadInputError

    with pytest.raises(BadInputError, match="--courses must be 1 to 10,000"):
        build_demo_site(f"sqlite:///{tmp_path}/site.db", tmp_path / "data", "S",
                        courses=10**20)
