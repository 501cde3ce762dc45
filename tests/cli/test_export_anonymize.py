"""``export --anonymize`` on real backups: every course of the reference
site (Moodle's own backups, ingested), and a course restored from its
anonymised export.  None of the original people may be left in any XML
member, and every element path must still be there, so the archive
restores as the original does."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from helpers import CORPUS, CORPUS_DIR, read_members
from lxml import etree

# Moodle 4.5's backups of the reference site, and the corpus (Moodle 2.3-4.3, tgz and zip)
BACKUPS = sorted((CORPUS_DIR.parents[1] / "moodle-site" / "backups").glob("*.mbz")) + CORPUS
REWRITTEN = ("users.xml", "files.xml", "moodle_backup.xml")
EMPTIED = ("custom_fields", "tags", "preferences", "role_overrides", "role_assignments")
Cv = Callable[..., Any]


def xml_members(path: Path) -> dict[str, bytes]:
    return {name.removeprefix("./"): data for name, is_dir, data in read_members(path)
            if not is_dir and name.endswith(".xml")}


def people(users_xml: bytes) -> list[str]:
    """What identifies the original users: e-mails, usernames, full names."""
    found = []
    for user in etree.fromstring(users_xml).iter("user"):
        def value(tag: str, user: etree._Element = user) -> str:
            return user.findtext(tag) or ""
        found += [value("email"), f"{value('firstname')} {value('lastname')}"]
        found.append(f"<username>{value('username')}</username>")
    return [p for p in found if p.strip("<> ")]


def element_paths(data: bytes, skip_under: tuple[str, ...] = ()) -> Counter[str]:
    paths: Counter[str] = Counter()
    stack: list[str] = []
    for event, el in etree.iterparse(io.BytesIO(data), events=("start", "end")):
        if event == "start":
            stack.append(el.tag)
            if not any(s in stack[:-1] for s in skip_under):
                paths["/".join(stack)] += 1
        else:
            stack.pop()
    return paths


def ingest_backups(work: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Every archive of BACKUPS ingested into a new repository in ``work``:
    the repository's options and each archive's ingest report, in order."""
    from coursevault.cli.app import main

    repo = ["-r", str(work / "repo"), "--cache-dir", str(work / "cache")]
    assert main([*repo, "init"]) == 0
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert main([*repo, "ingest", "--json", *map(str, BACKUPS)]) == 0
    return repo, [json.loads(line) for line in printed.getvalue().splitlines()]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Path]]:
    if not BACKUPS:
        pytest.skip(f"the reference site's backups are not beside the clone ({CORPUS_DIR})")
    from coursevault.cli.app import main

    work = tmp_path_factory.mktemp("anon")
    repo, snapshots = ingest_backups(work)
    pairs = []
    for archive, snap in zip(BACKUPS, snapshots, strict=True):
        out = work / f"{archive.stem}-anon.mbz"
        with redirect_stdout(io.StringIO()):
            assert main([*repo, "export", snap["snapshot"], "-o", str(out), "--anonymize"]) == 0
        pairs.append((archive, out))
    return pairs


def test_no_original_person_is_left_in_any_course(exported: list[tuple[Path, Path]]) -> None:
    assert len(exported) == len(BACKUPS) >= 59
    checked = 0
    for original, anonymised in exported:
        before, after = xml_members(original), xml_members(anonymised)
        if "users.xml" not in before:
            continue
        for person in people(before["users.xml"]):
            leaks = [name for name, data in after.items() if person.encode() in data]
            assert not leaks, f"{original.name}: {person!r} left in {leaks}"
            checked += 1
        ips = re.findall(rb"<(?:last)?ip>([^<]*)<", b"".join(after.values()))
        assert set(ips) <= {b"127.0.0.1", b"$@NULL@$"}, original.name
        assert b"<name>anonymize</name>\n        <value>1</value>" in after["moodle_backup.xml"]
        people_in = [p.encode() for p in people(before["users.xml"])] + [b"<ip>"]
        for name, data in before.items():  # a member without people is left as it was
            if name not in REWRITTEN and not any(p in data for p in people_in):
                assert after[name] == data, f"{original.name}: {name}"
    assert checked > 300  # 396: e-mails, full names and usernames of the users


def test_every_element_path_is_kept(exported: list[tuple[Path, Path]]) -> None:
    for original, anonymised in exported:
        before, after = xml_members(original), xml_members(anonymised)
        assert set(before) == set(after), original.name
        for name, data in before.items():
            skip = EMPTIED if name == "users.xml" else ()
            if name == "files.xml":  # less the users' pictures, nothing else
                kept = element_paths(after[name])
                assert all(kept[p] <= n for p, n in element_paths(data).items()), original.name
                continue
            assert element_paths(after[name], skip) == element_paths(data, skip), \
                f"{original.name}: {name}"


def export_and_restore(tmp_path: Path, cv: Cv, flag: str) -> dict[str, Any]:
    """A demo site's course backed up, exported with ``flag``, the export
    ingested and restored into the site as a new course: the report."""
    db, dataroot = f"sqlite:///{tmp_path / 'site.db'}", tmp_path / "dataroot"
    repo = ("-r", str(tmp_path / "repo"))
    site = json.loads(cv("demo-site", "--db", db, "--dataroot", str(dataroot), "--size", "S",
                         "--courses", "1", "--json").out)
    assert cv(*repo, "init").code == 0
    [backup] = json.loads(cv(*repo, "backup", "--db", db, "--dataroot", str(dataroot),
                             "--course", str(site["courses"][0]), "--json").out)
    out = tmp_path / "exported.mbz"
    assert cv(*repo, "export", backup["snapshot"], "-o", str(out), flag).code == 0
    ingested = json.loads(cv(*repo, "ingest", str(out), "--json").out)
    result = cv(*repo, "restore", ingested["snapshot"], "--db", db, "--dataroot", str(dataroot),
                "--json")
    assert result.code == 0, result.err
    report: dict[str, Any] = json.loads(result.out)
    return report


def test_an_anonymised_export_restores_with_new_users(tmp_path: Path, cv: Cv) -> None:
    report = export_and_restore(tmp_path, cv, "--anonymize")
    assert report["left_out"] == [] and report["users"]["created"] > 100
    import sqlite3

    with sqlite3.connect(tmp_path / "site.db") as conn:
        names = {row[0] for row in conn.execute("SELECT username FROM mdl_user")}
    assert {"anon1", "anon2"} <= names
