"""Options are checked before any work: one usage line and exit 2, nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import CORPUS

from coursevault import api
from coursevault.errors import BadInputError
from coursevault.history.retention import Policy

SMALL = min(CORPUS, key=lambda p: p.stat().st_size)
SANDBOX = next(p for p in CORPUS if p.name == "local_sandbox_tests_fixtures_sandbox-test.mbz")


def usage_line(r) -> str:
    assert r.code == 2, (r.out, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coursevault: error:"), r.err
    return str(lines[0])


@pytest.mark.parametrize("size", ["0", "-5", "1025"])
def test_init_refuses_a_pack_size_out_of_range(cv, tmp_path: Path, size: str) -> None:
    r = cv("init", tmp_path / "repo", "--pack-size", size)
    assert "pack size must be" in usage_line(r)
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize(
    "options", [{"pack_size": 0}, {"pack_size": -1}, {"level": 0}, {"level": 23}]
)
def test_the_api_refuses_what_the_cli_would(tmp_path: Path, options: dict[str, int]) -> None:
    with pytest.raises(BadInputError):
        api.init_repository(str(tmp_path / "repo"), **options)
    assert not (tmp_path / "repo").exists()


@pytest.fixture
def repo(cv, tmp_path: Path) -> str:
    path = str(tmp_path / "repo")
    assert cv("init", path).code == 0
    return path


def snapshots(cv, repo: str) -> list[dict[str, object]]:
    return list(json.loads(cv("snapshots", "-r", repo, "--json").out))


def test_ingest_refuses_an_empty_course_key(cv, repo: str) -> None:
    """``--course ''`` used to mean the default key, silently."""
    r = cv("ingest", "-r", repo, "--course", "", str(SMALL))
    assert "invalid course key ''" in usage_line(r)
    assert snapshots(cv, repo) == []


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--time=yesterday", "invalid time 'yesterday'"),
        ("--course=a/b", "invalid course key"),
        ("--course=..", "invalid course key"),  # refs/heads/.. is the refs folder
        ("--course=.cas-lock", "invalid course key"),
        ("--time=0001-01-01T00:00:00+01:00", "out of range"),
    ],
)
def test_ingest_checks_its_options_before_reading_any_archive(
    cv, repo: str, tmp_path: Path, option: str, message: str
) -> None:
    # the first archive does not even exist: the option is what is refused
    r = cv("ingest", "-r", repo, option, str(tmp_path / "missing.mbz"), str(SMALL))
    assert message in usage_line(r)
    assert snapshots(cv, repo) == []


def test_forget_refuses_a_negative_count_with_no_snapshot_to_apply_it_to(
    cv, repo: str, cache: Path
) -> None:
    r = cv("forget", "-r", repo, "--all", "--keep-last", "-1")
    assert "--keep-last must not be negative" in usage_line(r)
    r = cv("forget", "-r", repo, "--all", "--keep-daily", "3", "--keep-weekly", "-2")
    assert "--keep-weekly must not be negative" in usage_line(r)
    r = cv("forget", "-r", repo, "--all")
    assert "no retention rule" in usage_line(r)
    with api.open_repository(repo, cache_dir=str(cache)) as opened, pytest.raises(BadInputError):
        api.forget(opened, Policy(monthly=-1))


def test_export_refuses_an_unknown_format_before_resolving_the_snapshot(cv, repo: str) -> None:
    r = cv("export", "-r", repo, "--format", "rar", "-o", "x.mbz", "nosuchsnapshot")
    assert "unknown archive format 'rar'" in usage_line(r)


def test_a_catalog_url_s_password_is_never_printed(cv, repo: str) -> None:
    """A server catalog that cannot be opened is named without its password,
    even one holding an unencoded '@' (refused before any driver sees it)."""
    r = cv("--catalog", "postgresql+psycopg://u:s3cr3t@127.0.0.1:1/db", "-r", repo, "log", "x")
    assert r.code == 1 and "cannot open catalog postgresql+psycopg://u:***@127.0.0.1:1/db" in r.err
    assert "s3cr3t" not in r.err + r.out
    r = cv("--catalog", "postgresql+psycopg://u:s3@cr3t@127.0.0.1:1/db", "-r", repo, "log", "x")
    assert r.code == 1 and "write it as %40" in r.err
    assert "cr3t" not in r.err + r.out and len(r.err.strip().splitlines()) == 1


def test_a_site_url_with_a_bare_at_in_its_password_is_refused(cv, repo: str, tmp_path: Path) -> None:
    (tmp_path / "dataroot" / "filedir").mkdir(parents=True)
    r = cv("-r", repo, "backup", "--db", "postgresql+psycopg://u:s3@cr3t@127.0.0.1:1/db",
           "--dataroot", tmp_path / "dataroot", "--course", "2")
    assert r.code == 13 and "write it as %40" in r.err, (r.code, r.err)
    assert "cr3t" not in r.err + r.out


def test_export_into_a_folder_is_bad_input_before_anything_is_written(
    cv, repo: str, tmp_path: Path
) -> None:
    assert cv("ingest", "-r", repo, "--course", "k", SMALL).code == 0
    r = cv("export", "-r", repo, "k", "-o", tmp_path)
    assert "it is a folder" in usage_line(r)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_a_path_that_looks_like_rich_markup_prints_as_it_is(cv, tmp_path: Path) -> None:
    """'[/]' is rich's closing tag: printed with markup, init failed with an
    internal error after creating the repository."""
    where = tmp_path / "mk[" / "]repo"
    where.parent.mkdir()
    r = cv("init", where)
    assert r.code == 0 and f"at {where}" in r.out, r.err


def test_a_site_url_whose_port_is_not_a_number_is_one_line(cv, repo: str, tmp_path: Path) -> None:
    (tmp_path / "dataroot" / "filedir").mkdir(parents=True)
    r = cv("-r", repo, "backup", "--db", "postgresql+psycopg://u:s3cr3t@localhost:pg/db",
           "--dataroot", tmp_path / "dataroot", "--course", "2")
    assert r.code == 13 and "is not a URL" in r.err and "internal error" not in r.err, r.err
    assert "s3cr3t" not in r.err + r.out and len(r.err.strip().splitlines()) == 1


def _with_manifest(
    tmp_path: Path, name: str, edit: Callable[[bytes], bytes], member: str = "moodle_backup.xml",
    source: Path = SMALL,
) -> Path:
    """SMALL (a tgz) with its moodle_backup.xml (or ``member``) edited."""
    import gzip
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(source) as src, tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as dst:
        for entry in src.getmembers():
            data = src.extractfile(entry).read() if entry.isfile() else None  # type: ignore[union-attr]
            if entry.name == member and data is not None:
                data = edit(data)
                entry.size = len(data)
            dst.addfile(entry, io.BytesIO(data) if data is not None else None)
    path = tmp_path / name
    path.write_bytes(gzip.compress(out.getvalue()))
    return path


def test_a_manifest_s_odd_date_or_course_key_refuses_that_archive_only(
    cv, repo: str, tmp_path: Path
) -> None:
    """A backup_date past year 9999 was an internal error that stopped the
    batch; a manifest's course key was not held to --course's rules (a key
    with '/' or '..' names a file outside refs/heads/)."""
    import re

    bad_date = _with_manifest(
        tmp_path, "date.mbz",
        lambda d: re.sub(rb"<backup_date>\d+</backup_date>", b"<backup_date>99999999999999</backup_date>", d),
    )
    bad_key = _with_manifest(
        tmp_path, "key.mbz",
        lambda d: re.sub(rb"<original_course_id>\d+</original_course_id>",
                         b"<original_course_id>../../x</original_course_id>", d),
    )
    r = cv("ingest", "-r", repo, str(bad_date), str(bad_key), str(SMALL))
    assert r.code == 2 and "internal error" not in r.err, r.err
    assert "date.mbz: moodle_backup.xml:" in r.err and "out of range" in r.err
    assert "key.mbz: moodle_backup.xml:" in r.err and "invalid course key" in r.err
    assert len(snapshots(cv, repo)) == 1


def test_export_through_a_link_writes_its_target_and_refuses_a_fifo(
    cv, repo: str, tmp_path: Path
) -> None:
    """A link was renamed over (its target left empty), and a FIFO's
    reader got nothing while export said 'wrote' (/dev/full, as root,
    lost its device node the same way)."""
    import os

    assert cv("ingest", "-r", repo, "--course", "k", SMALL).code == 0
    (tmp_path / "dest").mkdir()
    real = tmp_path / "dest" / "real.mbz"
    real.touch()
    link = tmp_path / "link.mbz"
    link.symlink_to(real)
    assert cv("export", "-r", repo, "k", "-o", link).code == 0
    assert link.is_symlink() and real.stat().st_size > 1000
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert "not a regular file" in usage_line(cv("export", "-r", repo, "k", "-o", fifo))
    assert fifo.is_fifo()


def test_a_latin1_xml_member_is_kept_whole_and_not_rewritten(cv, repo: str, tmp_path: Path) -> None:
    """Cut into records, a document declared ISO-8859-1 broke log, ls and
    diff of its course ('its node is malformed') while check said clean;
    --anonymize and --no-users were an internal error (UnicodeDecodeError)."""
    import gzip

    latin1 = _with_manifest(
        tmp_path, "latin1.mbz",
        lambda d: d.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"', 1)
        .replace(b"<shortname>", b"<shortname>caf\xe9 ", 1),
        member="course/course.xml", source=SANDBOX,
    )
    assert cv("ingest", "-r", repo, "--course", "k", SANDBOX).code == 0
    assert cv("ingest", "-r", repo, "--course", "k", "--time", "2030-01-01", latin1).code == 0
    assert cv("log", "-r", repo, "k").code == 0
    assert cv("diff", "-r", repo, "k@~1", "k@latest").code == 0
    out = tmp_path / "out.mbz"
    assert cv("export", "-r", repo, "k", "-o", out).code == 0
    assert gzip.decompress(out.read_bytes()) == gzip.decompress(latin1.read_bytes())
    for option in ("--anonymize", "--no-users"):
        r = cv("export", "-r", repo, "k", "-o", tmp_path / "x.mbz", option)
        assert "member course/course.xml is not UTF-8" in usage_line(r)


def test_a_zip_member_no_tar_header_holds_is_refused_for_tgz(cv, repo: str, tmp_path: Path) -> None:
    """'internal error: TarHeaderError' when a zip snapshot was exported as tgz."""
    import zipfile

    source = next(p for p in CORPUS if zipfile.is_zipfile(p))
    made = tmp_path / "long.mbz"
    with zipfile.ZipFile(source) as z, zipfile.ZipFile(made, "w", zipfile.ZIP_DEFLATED) as out:
        for info in z.infolist():
            out.writestr(info, z.read(info))
        out.writestr("activities/" + "x" * 150 + ".txt", b"hello")
    assert cv("ingest", "-r", repo, "--course", "z", made).code == 0
    assert cv("export", "-r", repo, "z", "-o", tmp_path / "same.mbz").code == 0
    r = cv("export", "-r", repo, "z", "-o", tmp_path / "as.tgz", "--format", "tgz")
    assert "export it --format zip" in usage_line(r)
    assert not (tmp_path / "as.tgz").exists()


def test_zip_names_come_back_as_stored_and_a_folder_with_data_is_refused(
    cv, repo: str, tmp_path: Path
) -> None:
    """'./extra.txt' came back as 'extra.txt' and a './' entry was dropped
    on a zip's own export; a folder entry holding data was accepted and its
    data lost."""
    import zipfile

    source = next(p for p in CORPUS if zipfile.is_zipfile(p))
    dotted, folder = tmp_path / "dotted.mbz", tmp_path / "folder.mbz"
    with zipfile.ZipFile(source) as z:
        items = [(info, z.read(info)) for info in z.infolist()]
    with zipfile.ZipFile(dotted, "w", zipfile.ZIP_DEFLATED) as out:
        for info, data in items:
            out.writestr(info, data)
        out.writestr("./", b"")
        out.writestr("./extra.txt", b"extra")
    with zipfile.ZipFile(folder, "w", zipfile.ZIP_DEFLATED) as out:
        for info, data in items:
            out.writestr(info, data)
        out.writestr(zipfile.ZipInfo("dirwithdata/"), b"secret data")
    assert cv("ingest", "-r", repo, "--course", "d", dotted).code == 0
    out = tmp_path / "out.mbz"
    assert cv("export", "-r", repo, "d", "-o", out).code == 0
    with zipfile.ZipFile(dotted) as a, zipfile.ZipFile(out) as b:
        assert [i.filename for i in a.infolist()] == [i.filename for i in b.infolist()]
    r = cv("ingest", "-r", repo, "--course", "f", folder)
    assert "dirwithdata/: a folder entry that holds data" in usage_line(r)
    # an empty folder entry compressed with bzip2 is 14 bytes of nothing: kept
    bz = tmp_path / "bz.mbz"
    with zipfile.ZipFile(bz, "w", zipfile.ZIP_BZIP2) as out:
        for info, data in items:
            out.writestr(info.filename, data)
        out.writestr(zipfile.ZipInfo("emptydir/"), b"", compress_type=zipfile.ZIP_BZIP2)
    assert cv("ingest", "-r", repo, "--course", "b", bz).code == 0


def test_an_archive_through_a_pipe_is_refused_for_what_it_is(cv, repo: str, tmp_path: Path) -> None:
    """'ingest <(cat x.mbz)' said 'not a Moodle backup archive (neither
    gzip'd tar nor zip)' of a valid archive: a pipe cannot be read twice."""
    import os
    import threading

    fifo = tmp_path / "pipe.mbz"
    os.mkfifo(fifo)

    def feed() -> None:
        try:
            with open(fifo, "wb") as w:
                w.write(SMALL.read_bytes())
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    r = cv("ingest", "-r", repo, fifo)
    assert "not a regular file (a pipe or a device)" in usage_line(r)
    # let the writer finish if it still waits for a reader (never blocks)
    os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
    writer.join(5)


def test_ls_of_a_folder_lists_the_members_in_it(cv, repo: str) -> None:
    """`cat SNAP activities/` says 'list it with ls', and ls refused the
    folder as 'not a stored XML document'."""
    assert cv("ingest", "-r", repo, "--course", "k", SANDBOX).code == 0
    r = cv("cat", "-r", repo, "k", "activities/")
    assert "is a folder: list it with ls" in usage_line(r)
    # "./activities" (as tar lists it) printed nothing, exit 0
    for folder in ("activities/", "activities", "course", "./activities", "/course/"):
        r = cv("ls", "-r", repo, "k", folder, "--json")
        assert r.code == 0, r.err
        names = [m["name"] for m in json.loads(r.out)]
        want = folder.removeprefix("./").strip("/") + "/"
        assert names and all(n.startswith(want) for n in names), (folder, names)
    assert cv("ls", "-r", repo, "k", "course/course.xml").out.startswith("course[@id=19]")
    assert cv("ls", "-r", repo, "k", "./course/course.xml").out.startswith("course[@id=19]")


@pytest.mark.parametrize("query", ["foo=bar", "ssl=true"])
@pytest.mark.parametrize("command", ["backup", "restore"])
def test_a_url_option_the_driver_refuses_is_one_line(
    cv, repo: str, tmp_path: Path, query: str, command: str
) -> None:
    """PyMySQL raised TypeError (``foo``) or AttributeError (``ssl=true``)
    from inside its connect: 'internal error' before (no server is needed to
    see it: the driver refuses the option before connecting)."""
    (tmp_path / "dataroot" / "filedir").mkdir(parents=True)
    url = f"mysql+pymysql://root@127.0.0.1:9/db?{query}"
    where = ("--db", url, "--dataroot", tmp_path / "dataroot")
    argv = (["backup", *where, "--course", "2"] if command == "backup"
            else ["restore", _any_snapshot(cv, repo), *where])
    r = cv("-r", repo, *argv)
    assert r.code == 13 and "the database driver refused the URL's options" in r.err, r.err
    assert "internal error" not in r.err and len(r.err.strip().splitlines()) == 1


def _any_snapshot(cv, repo: str) -> str:
    r = cv("-r", repo, "ingest", "--json", str(SMALL))
    assert r.code == 0, r.err
    return str(json.loads(r.out)["snapshot"])


def test_a_postgres_scheme_is_postgresql(cv, repo: str, tmp_path: Path) -> None:
    """``postgres://`` (libpq's and Heroku's form) was 'unsupported database
    (PostgreSQL, ...)': now it is PostgreSQL, here one that does not answer."""
    (tmp_path / "dataroot" / "filedir").mkdir(parents=True)
    r = cv("-r", repo, "backup", "--db", "postgres://u@127.0.0.1:9/db",
           "--dataroot", tmp_path / "dataroot", "--course", "2")
    assert r.code == 13 and "unsupported database" not in r.err, r.err
    assert "postgresql+psycopg://u@127.0.0.1:9/db" in r.err, r.err


@pytest.mark.parametrize("argv", [
    ["backup", "--course", "99999999999999999999"],
    ["backup", "--all", "--category", "99999999999999999999"],
    ["backup", "--all", "--exclude", "99999999999999999999"],
    ["restore", "0123abcd", "--into", "99999999999999999999", "--merge"],
    ["restore", "0123abcd", "--category", "99999999999999999999"],
])
def test_an_id_beyond_moodle_s_bigint_is_bad_input(
    cv, repo: str, tmp_path: Path, argv: list[str]
) -> None:
    """'bigint out of range' (exit 13) on PostgreSQL, OverflowError on SQLite."""
    db = tmp_path / "site.db"
    db.write_bytes(b"")
    (tmp_path / "dataroot" / "filedir").mkdir(parents=True)
    r = cv("-r", repo, *argv, "--db", f"sqlite:///{db}", "--dataroot", tmp_path / "dataroot")
    assert r.code == 2 and "99999999999999999999 is not in the range" in r.err, r.err


@pytest.mark.parametrize(("argv", "said"), [
    (["--all", "--course", "3"], "--all takes every course: it cannot go with --course"),
    (["--course", "3", "--category", "1"], "--category narrows --all"),
    (["--course", "3", "--site", ""], "--site is empty"),
    (["--course", "3", "--site", "../../etc"], "--site '../../etc': use letters"),
])
def test_backup_options_that_contradict_are_refused_before_connecting(
    cv, repo: str, tmp_path: Path, argv: list[str], said: str
) -> None:
    """Each was silently taken one way (course 3 alone, the category ignored,
    the default site) or refused once per course after connecting."""
    r = cv("-r", repo, "backup", "--db", f"sqlite:///{tmp_path}/none.db",
           "--dataroot", tmp_path / "none", *argv)
    assert r.code == 2 and said in r.err and len(r.err.strip().splitlines()) == 1, r.err


@pytest.mark.parametrize(("option", "value", "said"), [
    ("--shortname", "", "--shortname is empty"),
    ("--fullname", "   ", "--fullname is empty"),
    ("--shortname", "a\nb", "holds a line break or control character"),
    ("--shortname", "\udcff", "--shortname is not UTF-8 text"),  # a shell's byte 0xff
])
def test_a_new_course_name_no_course_should_have_is_refused(
    cv, repo: str, tmp_path: Path, option: str, value: str, said: str
) -> None:
    """'' was taken as no name, spaces made a course named so, and bytes
    that are not UTF-8 were an internal UnicodeEncodeError (after a dry run
    that said yes)."""
    db = tmp_path / "site.db"
    db.write_bytes(b"")
    (tmp_path / "dataroot" / "filedir").mkdir(parents=True)
    r = cv("-r", repo, "restore", _any_snapshot(cv, repo), "--db", f"sqlite:///{db}",
           "--dataroot", tmp_path / "dataroot", option, value, "--dry-run")
    assert r.code == 2 and said in r.err and "internal error" not in r.err, r.err


def test_a_database_url_that_is_not_utf8_is_one_line(cv, repo: str, tmp_path: Path) -> None:
    (tmp_path / "dataroot" / "filedir").mkdir(parents=True)
    for argv in (["restore", _any_snapshot(cv, repo)], ["demo-site"], ["backup", "--all"]):
        r = cv("-r", repo, *argv, "--db", "sqlite:////tmp/\udcff.db",
               "--dataroot", tmp_path / "dataroot")
        assert r.code == 13 and "database URL is not UTF-8 text" in r.err, (argv, r.err)


@pytest.mark.parametrize("prefix", ["x;drop table mdl_user;--", "", "mdl-"])
def test_a_table_prefix_that_cannot_be_one_is_refused_before_connecting(
    cv, repo: str, tmp_path: Path, prefix: str
) -> None:
    """The prefix goes into every table name of the SQL sent: 'x;drop' was
    sent as written, '' read tables named config and user."""
    db = tmp_path / "site.db"
    (tmp_path / "dataroot" / "filedir").mkdir(parents=True)
    site = ("--db", f"sqlite:///{db}", "--dataroot", tmp_path / "dataroot", "--prefix", prefix)
    for argv in (["backup", "--all"], ["restore", _any_snapshot(cv, repo)], ["demo-site"],
                 ["demo-site", "--churn"]):
        r = cv("-r", repo, *argv, *site)
        assert r.code == 2 and f"--prefix {prefix!r}" in r.err, (argv, r.err)
        assert len(r.err.strip().splitlines()) == 1
        assert not db.exists()
