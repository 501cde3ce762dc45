"""Both doors, on the corpus (issue 23): every real archive of
``../shared/corpus/moodle/`` (Moodle 2.3 to 4.2, tgz and zip) ingested and
``restore``d as a new course into one copy of the reference site on
PostgreSQL.  Each is either refused -- exit 2, one line naming the backup's
release and the site's (pre-4.0 backups by design, docs/guide.md) -- or
restored with every activity, question type and block of a plugin the
definitions lack named in a warning, never dropped in silence.

Each restored course is backed up again, exported and compared modulo ids
twice: with the archive itself (written by an older Moodle, so members and
fields its release did not write differ too) and with Moodle's own backup
of Moodle 4.5's restore of the same archive (the reference site's course of
that ``source_archive``, courses.tsv): both written by 4.5, what differs
there is the restore's doing.  ``FLOORS`` ratchets both counts of agreeing
members; tests/dbrestore/README.md has the table with what differs and why.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dbbackup.mbzcompare import SAME, Comparison, read_archive
from dbbackup.modulo import compare_members
from dbbackup.refsite import RefSite
from dbbackup.restorerules import Exceptions
from helpers import CORPUS

from coursevault.structure import registry

from .clirun import run, run_json
from .roundtrip import coursevault_exceptions
from .sitecopy import SiteCopy
from .test_cli_restore import query

# archive -> members agreeing (with the archive, with Moodle's round trip)
FLOORS: dict[str, tuple[int, int]] = {
    "mod_studentquiz_tests_fixtures_backup-moodle2-availability-setting": (32, 49),
    "mod_studentquiz_tests_fixtures_backup-moodle2-course-with-studentquiz-m400": (24, 36),
    "question_type_crossword_tests_fixtures_crossword_after_feedback_upgrade": (39, 56),
    "question_type_crossword_tests_fixtures_crossword_pre_feedback_upgrade": (44, 58),
}
SITE_RELEASE = "4.5.5+ (Build: 20250613)"
_RELEASE = re.compile(rb"<backup_release>([^<]*)</backup_release>")


@dataclass
class ArchiveRestore:
    """One archive's ingest, restore and (restored) round trip."""

    archive: Path
    release: str
    code: int
    err: str
    report: dict[str, Any] | None
    with_archive: Comparison | None = None
    with_moodle: Comparison | None = None


def agreeing(comparison: Comparison | None) -> int:
    return 0 if comparison is None else sum(o.status in SAME for o in comparison.outcomes)


def _moodle_restores(site: RefSite) -> dict[str, dict[str, str]]:
    """courses.tsv's rows of the courses Moodle restored, by source archive."""
    with open(site.dir / "courses.tsv", newline="") as f:
        return {
            r["source_archive"]: r for r in csv.DictReader(f, delimiter="\t") if r["source_archive"]
        }


@pytest.fixture(scope="module")
def corpus_restores(
    refsite: RefSite,
    site_copies: Callable[[str], SiteCopy],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, ArchiveRestore]:
    copy = site_copies("postgres")
    work = tmp_path_factory.mktemp("corpus")
    repo = ("-r", work / "repo", "--cache-dir", work / "cache")
    assert run(*repo, "init").code == 0
    moodle = _moodle_restores(refsite)
    done: dict[str, ArchiveRestore] = {}
    for archive in CORPUS:
        stored = run_json(*repo, "ingest", archive)
        snapshot = str((stored[0] if isinstance(stored, list) else stored)["snapshot"])
        # as Moodle restored it: without users where its restore had to
        users = (
            ()
            if "users=0" not in moodle.get(archive.name, {}).get("outcome", "")
            else ("--no-users",)
        )
        result = run(
            *repo,
            "restore",
            snapshot,
            "--db",
            copy.url,
            "--dataroot",
            copy.dataroot,
            "--new-course",
            *users,
            "--json",
        )
        release = _RELEASE.search(read_archive(archive)["moodle_backup.xml"].data)
        assert release, archive
        done[archive.stem] = ArchiveRestore(
            archive,
            release.group(1).decode(),
            result.code,
            result.err,
            json.loads(result.out) if result.code == 0 else None,
        )
    _round_trip(repo, copy, refsite, moodle, work, done)
    return done


def _round_trip(
    repo: tuple[Any, ...],
    copy: SiteCopy,
    site: RefSite,
    moodle: dict[str, dict[str, str]],
    work: Path,
    done: dict[str, ArchiveRestore],
) -> None:
    """Every restored course backed up in one run, exported, compared."""
    restored = {r.report["courseid"]: r for r in done.values() if r.report}
    second = run_json(
        *repo,
        "backup",
        "--db",
        copy.url,
        "--dataroot",
        copy.dataroot,
        *(a for i in restored for a in ("--course", i)),
    )
    for outcome in second:
        assert outcome["outcome"] == "stored", outcome
        r = restored[outcome["course_id"]]
        assert r.report is not None
        mbz = work / f"{r.archive.stem}.mbz"
        run_json(*repo, "export", outcome["snapshot"], "-o", mbz)
        ours = read_archive(mbz)
        theirs = read_archive(r.archive)
        exc = coursevault_exceptions(
            Exceptions(), theirs["course/course.xml"].data, r.report, heap_order=True
        )
        r.with_archive = compare_members(ours, theirs, exc)
        oracle = read_archive(site.dir / "backups" / moodle[r.archive.name]["backup_file"])
        # Moodle's restore made that course: its rows carry its rewrites
        exc = coursevault_exceptions(
            Exceptions(),
            oracle["course/course.xml"].data,
            r.report,
            moodle_restored_the_source=True,
            heap_order=True,
        )
        r.with_moodle = compare_members(ours, oracle, exc)


def undefined_plugins(archive: Path) -> list[str]:
    """What of the archive no definition reads: its activities' modules,
    its questions' types, its blocks (as the warnings name them)."""
    members = read_archive(archive)
    manifest = members["moodle_backup.xml"].data
    modules = set(re.findall(rb"<modulename>(\w+)</modulename>", manifest))
    qtypes = (
        set(re.findall(rb"<qtype>(\w+)</qtype>", members["questions.xml"].data))
        if "questions.xml" in members
        else set()
    )
    blocks = {
        m.group(1)
        for p, mem in members.items()
        if p.endswith("/block.xml")
        if (m := re.search(rb"<blockname>(\w+)</blockname>", mem.data))
    }
    return sorted(
        [f"module {m.decode()!r}" for m in modules if m.decode() not in registry.activities()]
        + [
            f"type {q.decode()!r}"
            for q in qtypes
            if f"qtype_{q.decode()}" not in registry.subplugins("qtype")
        ]
        + [f"block {b.decode()!r}" for b in blocks if b.decode() not in registry.blocks()]
    )


def table(done: dict[str, ArchiveRestore]) -> str:
    lines = []
    for name, r in sorted(done.items()):
        if r.report is None:
            lines.append(f"{name[:70]:<70} {r.release:>6}  refused ({r.code})")
            continue
        floor = FLOORS.get(name, (0, 0))
        lines.append(
            f"{name[:70]:<70} {r.release:>6}  {agreeing(r.with_archive)}/"
            f"{len(r.with_archive.outcomes) if r.with_archive else 0} (floor {floor[0]}), "
            f"{agreeing(r.with_moodle)}/{len(r.with_moodle.outcomes) if r.with_moodle else 0} "
            f"(floor {floor[1]}); {sum(r.report['rows'].values())} rows; "
            f"warnings: {r.report['warnings']}"
        )
    return "\n".join(lines)


def test_every_corpus_archive_is_refused_or_restored(
    corpus_restores: dict[str, ArchiveRestore],
) -> None:
    assert len(corpus_restores) == len(CORPUS) >= 29
    assert {n for n, r in corpus_restores.items() if r.report} == set(FLOORS), table(
        corpus_restores
    )
    for name, r in corpus_restores.items():
        if r.report is None:
            assert r.code == 2, (name, r.code, r.err)
            message = r.err.strip()
            assert "\n" not in message and message.startswith("coursevault: error: "), (name, r.err)
            assert f"Moodle {r.release}" in message and SITE_RELEASE in message, (name, message)
            assert "Traceback" not in r.err
            continue
        assert r.code == 0
        undefined = undefined_plugins(r.archive)
        for what in undefined:
            assert any(what in w for w in r.report["warnings"]), (name, what, r.report["warnings"])
        left_out_modules = [w for w in undefined if w.startswith("module")]
        assert len(r.report["left_out"]) >= len(left_out_modules), (name, r.report)


def test_restored_corpus_archives_agree_at_least_as_the_floors_say(
    corpus_restores: dict[str, ArchiveRestore],
) -> None:
    below = {
        name: (agreeing(r.with_archive), agreeing(r.with_moodle), floor)
        for name, floor in FLOORS.items()
        if (r := corpus_restores[name])
        and (agreeing(r.with_archive) < floor[0] or agreeing(r.with_moodle) < floor[1])
    }
    assert not below, table(corpus_restores)


def test_what_moodle_restore_changes_in_an_older_backup(
    corpus_restores: dict[str, ArchiveRestore], site_copies: Callable[[str], SiteCopy]
) -> None:
    """A 4.2 quiz's review options get 4.3's "max marks" as its "marks"; a
    theme the site lacks is dropped; overrides of capabilities it lacks are
    not written -- each what Moodle's restore of that archive did."""
    url = site_copies("postgres").url
    quiz = corpus_restores["question_type_crossword_tests_fixtures_crossword_pre_feedback_upgrade"]
    assert quiz.report is not None
    marks = query(
        url,
        "SELECT reviewmaxmarks || '/' || reviewmarks FROM mdl_quiz WHERE course = :c",
        {"c": quiz.report["courseid"]},
    )
    assert marks == "69904/69904"
    c5 = corpus_restores["mod_studentquiz_tests_fixtures_backup-moodle2-availability-setting"]
    assert c5.report is not None
    assert (
        query(url, "SELECT theme FROM mdl_course WHERE id = :c", {"c": c5.report["courseid"]}) == ""
    )
    unknown = query(
        url,
        "SELECT COUNT(*) FROM mdl_role_capabilities rc JOIN mdl_context x ON x.id = rc.contextid "
        "LEFT JOIN mdl_capabilities cap ON cap.name = rc.capability "
        "WHERE x.contextlevel = 50 AND x.instanceid = :c AND cap.id IS NULL",
        {"c": c5.report["courseid"]},
    )
    assert unknown == 0
