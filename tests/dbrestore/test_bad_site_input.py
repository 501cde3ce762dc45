"""What a site cannot take.  A SQLite site that is not there: ``restore``
and ``backup --db`` say so (exit 13) and leave no empty database file
behind where the user mistyped a path -- SQLite would otherwise create one
on connecting, and the error was "no such table: mdl_config" about a file
the command itself had made.  A value its column cannot hold: exit 2."""

from __future__ import annotations

from pathlib import Path

from .clirun import run
from .tinysite import Tiny


def test_restore_into_a_missing_sqlite_file_creates_none(tiny: Tiny, tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    result = run("-r", tiny.repo, "restore", tiny.snapshot, "--db", f"sqlite:///{missing}",
                 "--dataroot", tiny.target / "data")
    assert result.code == 13, result
    assert "no such file" in result.err and str(missing) in result.err, result
    assert len(result.err.strip().splitlines()) == 1
    assert not missing.exists()


def test_backup_of_a_missing_sqlite_file_creates_none(tiny: Tiny, tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    result = run("-r", tiny.repo, "backup", "--db", f"sqlite:///{missing}",
                 "--dataroot", tiny.target / "data", "--course", "2")
    assert result.code == 13, result
    assert "no such file" in result.err and str(missing) in result.err, result
    assert not missing.exists()


def test_values_the_site_cannot_hold_are_refused_with_one_line(
    tiny: Tiny, tmp_path: Path
) -> None:
    """--fullname past course.fullname's 254 characters was stored as it was
    on SQLite (exit 13 on PostgreSQL); --start-date past 64 bits failed as
    an internal OverflowError.  Both are bad input (exit 2), nothing written."""
    site = tiny.copy(tmp_path / "site")
    before = site.state()
    for options, says in ((("--fullname", "x" * 300), "course.fullname"),
                          (("--start-date", "99999999999999999999"), "--start-date"),
                          (("--start-date", "9999-12-31"), "--start-date")):
        result = run("-r", tiny.repo, "restore", tiny.snapshot, "--db", site.url,
                     "--dataroot", site.dataroot, *options)
        assert result.code == 2 and says in result.err, (options, result)
        assert len(result.err.strip().splitlines()) == 1
    assert not before.differences(site.state())


def test_a_new_course_s_names_with_into_are_refused(tiny: Tiny, tmp_path: Path) -> None:
    """--shortname, --fullname and --category with --into: exit 0 and the
    names and category silently left as they were (an adversarial pass)."""
    site = tiny.copy(tmp_path / "site")
    before = site.state()
    for options, says in ((("--shortname", "NEW"), "--shortname names a new course"),
                          (("--fullname", "N", "--category", "99"),
                           "--fullname and --category name a new course")):
        result = run("-r", tiny.repo, "restore", tiny.snapshot, "--db", site.url,
                     "--dataroot", site.dataroot, "--into", "2", "--merge", *options)
        assert result.code == 2 and says in result.err, (options, result)
        assert len(result.err.strip().splitlines()) == 1
    assert not before.differences(site.state())


def test_restore_into_a_database_that_is_not_moodle_s_says_so(tiny: Tiny, tmp_path: Path) -> None:
    """An existing database without Moodle's tables, or a site under another
    prefix: the error said only "no such table: mdl_config"."""
    import sqlite3

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    site = tiny.copy(tmp_path / "site")
    for url, prefix in ((f"sqlite:///{empty}", "mdl_"), (site.url, "zz_")):
        result = run("-r", tiny.repo, "restore", tiny.snapshot, "--db", url,
                     "--dataroot", site.dataroot, "--prefix", prefix)
        assert result.code == 13, result
        assert f"{prefix}config" in result.err and "not a Moodle database" in result.err, result
        assert f"prefix {prefix!r}" in result.err, result
        assert len(result.err.strip().splitlines()) == 1


def test_a_start_date_without_dashes_is_not_taken_for_epoch_seconds(
    tiny: Tiny, tmp_path: Path
) -> None:
    """--start-date 20270201 (a date written without dashes) or 2027 was
    taken for epoch seconds: exit 0 and every date of the restored course
    moved to 1970.  Epoch seconds that short (before 1973) are refused
    (exit 2), naming the time they would be; 9 or 10 digits are taken."""
    site = tiny.copy(tmp_path / "site")
    before = site.state()
    for value, says in (("20270201", "1970-08-23"), ("2027", "1970-01-01"),
                        ("\u0662\u0660\u0662\u0667", "is not a date")):
        result = run("-r", tiny.repo, "restore", tiny.snapshot, "--db", site.url,
                     "--dataroot", site.dataroot, "--start-date", value)
        assert result.code == 2 and says in result.err, (value, result)
        assert "--start-date" in result.err and len(result.err.strip().splitlines()) == 1
    assert not before.differences(site.state())
    result = run("-r", tiny.repo, "restore", tiny.snapshot, "--db", site.url,
                 "--dataroot", site.dataroot, "--start-date", "1801526400", "--dry-run")
    assert result.code == 0, result


def test_a_site_without_a_release_cannot_be_used(tiny: Tiny, tmp_path: Path) -> None:
    """A config table without Moodle's release (or without its version
    too: not a Moodle database) was bad input, exit 2 ("the database has
    no Moodle release"), where a backup of that site is exit 13 and so is
    a site of another version."""
    import sqlalchemy as sa

    for missing in (("release",), ("release", "version")):
        site = tiny.copy(tmp_path / "-".join(missing))
        with site.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM mdl_config WHERE name IN :n").bindparams(
                sa.bindparam("n", expanding=True)), {"n": list(missing)})
        before = site.state()
        result = run("-r", tiny.repo, "restore", tiny.snapshot, "--db", site.url,
                     "--dataroot", site.dataroot)
        assert result.code == 13, (missing, result)
        assert f"no Moodle {missing[-1]}" in result.err, result
        assert len(result.err.strip().splitlines()) == 1
        assert not before.differences(site.state())
