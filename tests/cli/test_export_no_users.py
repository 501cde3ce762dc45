"""``export --no-users`` on real backups: Moodle's own backups of the
reference site (4.5) and the corpus (2.3-4.3), ingested.  The archive must
say users are off, hold no user and none of their data, keep every element
the original has that is not user data, name what it kept unchecked, and
restore.  (tests/dbbackup/test_export_no_users.py holds the exact oracle:
Moodle's rules as the database door applies them.)"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from helpers import read_members
from test_export_anonymize import (
    BACKUPS,
    element_paths,
    export_and_restore,
    ingest_backups,
    xml_members,
)

Cv = Callable[..., Any]
# elements only user data has (forum posts, attempts, submissions, grades,
# glossary entries, ratings; a choice's answers -- a question's are not)
USER_DATA = re.compile(rb"<(post|attempt|submission|grade_grade|entry|rating) id=|"
                       rb"<choice_answers>\s*<answer id=|<answers>\s*<answer id=\"\d+\">\s*<optionid>")
# third-party modules (and Moodle 2.2's assignment) coursevault has no definitions of
PLUGINS_WITHOUT_DEFINITIONS = ("studentquiz", "simplecertificate", "questionnaire", "hsuforum",
                               "assignment")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, int, str, Path]]:
    """(original, exit code, stderr, export) per archive."""
    if not BACKUPS:
        pytest.skip("the reference site's backups are not beside the clone")
    from coursevault.cli.app import main

    work = tmp_path_factory.mktemp("nousers")
    repo, snapshots = ingest_backups(work)
    results = []
    for archive, snap in zip(BACKUPS, snapshots, strict=True):
        out, err = work / f"{archive.stem}-nu.mbz", io.StringIO()
        with redirect_stdout(io.StringIO()), redirect_stderr(err):
            code = main([*repo, "export", snap["snapshot"], "-o", str(out), "--no-users"])
        results.append((archive, code, err.getvalue(), out))
    return results


def _setting(manifest: bytes, name: str) -> bytes:
    found = re.search(rb"<name>" + name.encode() + rb"</name>\s*<value>([^<]*)<", manifest)
    assert found is not None, name
    return found.group(1)


def test_every_course_backup_exports_without_users(
    exported: list[tuple[Path, int, str, Path]],
) -> None:
    courses = 0
    for original, code, err, out in exported:
        kind = re.search(rb"<type>(\w+)</type>", xml_members(original)["moodle_backup.xml"])
        if kind is not None and kind.group(1) != b"course":
            # one line, exit 2: a narrowed activity backup is not defined
            assert code == 2 and err.count("\n") == 1 and "activity backup" in err, err
            continue
        assert code == 0, f"{original.name}: {err}"
        before, after = xml_members(original), xml_members(out)
        assert _setting(after["moodle_backup.xml"], "users") == b"0", original.name
        assert b"<user " not in after.get("users.xml", b""), original.name
        for name, data in after.items():
            assert not USER_DATA.search(data) or (name in before and USER_DATA.search(
                before[name]) and _unchecked(name, err)), f"{original.name}: {name}"
            if name != "moodle_backup.xml":  # nothing invented
                kept, had = element_paths(data), element_paths(before[name])
                assert all(had[p] >= n for p, n in kept.items()), f"{original.name}: {name}"
        for line in err.splitlines():  # only what no definition covers is kept unchecked
            assert line.startswith("coursevault: warning: ") and "user data" in line, line
            what = line.split()[2].rstrip(":")
            assert (what.endswith("/") and what.split("/")[1].rsplit("_", 1)[0] in \
                PLUGINS_WITHOUT_DEFINITIONS) or what.endswith("/outcome.xml"), line
        courses += 1
    assert courses >= 50


def _unchecked(name: str, err: str) -> bool:
    """Whether the export said it kept ``name`` (or its activity) unchecked."""
    warned = [line.split()[2].rstrip(":") for line in err.splitlines()]
    return any(name == w or (w.endswith("/") and name.startswith(w)) for w in warned)


def test_moodles_user_data_is_gone_from_a_rich_course(
    exported: list[tuple[Path, int, str, Path]],
) -> None:
    """The reference site's rich course (every standard activity, with user
    data): what its users did is in the original and not in the export."""
    [(original, code, err, out)] = [e for e in exported if e[0].name == "c038-rich.mbz"]
    assert code == 0 and err == ""
    before, after = xml_members(original), xml_members(out)
    assert sum(bool(USER_DATA.search(d)) for d in before.values()) >= 10
    assert not any(USER_DATA.search(d) for d in after.values())
    files_before = [n for n, is_dir, _ in read_members(original) if n.startswith("files/")]
    files_after = [n for n, is_dir, _ in read_members(out) if n.startswith("files/")]
    assert 0 < len(files_after) < len(files_before)  # submissions' files gone, the rest kept


def test_a_no_users_export_restores_without_users(tmp_path: Path, cv: Cv) -> None:
    report = export_and_restore(tmp_path, cv, "--no-users")
    # the same shape as with users ({} before), nothing in it
    assert report["users"] == {"matched": 0, "created": 0, "renamed": [], "skipped": 0}
    assert report["activities"] == 72 and report["left_out"] == []
    assert not {"forum_posts", "assign_submission", "grade_grades", "user_enrolments",
                "choice_answers"} & set(report["rows"]), report["rows"]


def test_no_users_and_anonymize_are_refused_together(tmp_path: Path, cv: Cv) -> None:
    """As backup --db refuses them: Moodle has no anonymised backup
    without users.  One line, exit 2, nothing written."""
    repo = ("-r", str(tmp_path / "repo"))
    assert cv(*repo, "init").code == 0
    snap = json.loads(cv(*repo, "ingest", str(BACKUPS[0]), "--json").out)
    out = tmp_path / "x.mbz"
    r = cv(*repo, "export", snap["snapshot"], "-o", str(out), "--no-users", "--anonymize")
    assert r.code == 2 and "--no-users" in r.err and r.err.count("\n") == 1, r
    assert not out.exists()
