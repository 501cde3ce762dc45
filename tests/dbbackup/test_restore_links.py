"""Links inside text come back pointing at the restored course (issue 23:
"links inside text: Moodle's ``$@...@$`` markers decoded to the new ids").

A page of a demo course links to the course, to a forum of the course and
to a file of the page's context; the backup encodes them as markers, and
the restored page links to the new course, the new forum module and the new
context (SQLite demo site: no server needed)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from .clirun import Result


def test_restored_links_name_the_restored_items(cv: Callable[..., Result],
                                                tmp_path: Path) -> None:
    db = tmp_path / "site.db"
    site = ("--db", f"sqlite:///{db}", "--dataroot", str(tmp_path / "data"))
    assert cv("demo-site", *site, "--size", "S", "--courses", "1").code == 0
    with sqlite3.connect(db) as conn:
        (www,) = conn.execute("SELECT h.wwwroot FROM mdl_mnet_host h JOIN mdl_config c "
                              "ON c.name = 'mnet_localhost_id' AND c.value = h.id").fetchone()
        (forum_cm,) = conn.execute(
            "SELECT cm.id FROM mdl_course_modules cm JOIN mdl_modules m ON m.id = cm.module "
            "WHERE m.name = 'forum' AND cm.course = 2 ORDER BY cm.id").fetchone()
        page, page_cm = conn.execute(
            "SELECT p.id, cm.id FROM mdl_page p JOIN mdl_course_modules cm ON cm.instance = p.id "
            "JOIN mdl_modules m ON m.id = cm.module AND m.name = 'page' "
            "WHERE p.course = 2 ORDER BY p.id").fetchone()
        (page_ctx,) = conn.execute("SELECT id FROM mdl_context WHERE contextlevel = 70 "
                                   "AND instanceid = ?", (page_cm,)).fetchone()
        content = (f'<a href="{www}/course/view.php?id=2">course</a> '
                   f'<a href="{www}/mod/forum/view.php?id={forum_cm}">forum</a> '
                   f'<img src="{www}/pluginfile.php/{page_ctx}/mod_page/content/0/x.png">')
        conn.execute("UPDATE mdl_page SET content = ? WHERE id = ?", (content, page))
    backup = cv("backup", *site, "--course", "2", "--json")
    assert backup.code == 0, backup.err
    snapshot = json.loads(backup.out)[0]["snapshot"]
    listing = json.loads(cv("ls", snapshot, "--json").out)
    folder = next(m["name"] for m in listing if m["name"] == f"activities/page_{page_cm}")
    stored = cv("cat", snapshot, f"{folder}/page.xml")
    assert f"$@FORUMVIEWBYID*{forum_cm}@$" in stored.out  # the backup encoded them
    restored = cv("restore", snapshot, *site, "--json")
    assert restored.code == 0, restored.err
    report = json.loads(restored.out)
    assert report["links"] >= 1, report
    assert not any(k.startswith("link ") for k in report["unmapped"]), report["unmapped"]
    course = report["courseid"]
    with sqlite3.connect(db) as conn:
        (new_content,) = conn.execute(
            "SELECT content FROM mdl_page WHERE course = ? AND name = "
            "(SELECT name FROM mdl_page WHERE id = ?)", (course, page)).fetchone()
        (new_forum,) = conn.execute(
            "SELECT cm.id FROM mdl_course_modules cm JOIN mdl_modules m ON m.id = cm.module "
            "WHERE m.name = 'forum' AND cm.course = ? ORDER BY cm.id", (course,)).fetchone()
        (new_ctx,) = conn.execute(
            "SELECT c.id FROM mdl_context c JOIN mdl_course_modules cm ON cm.id = c.instanceid "
            "JOIN mdl_page p ON p.id = cm.instance JOIN mdl_modules m ON m.id = cm.module "
            "AND m.name = 'page' WHERE c.contextlevel = 70 AND p.course = ? AND p.name = "
            "(SELECT name FROM mdl_page WHERE id = ?)", (course, page)).fetchone()
    assert "$@" not in new_content
    assert f"{www}/course/view.php?id={course}\"" in new_content
    assert f"{www}/mod/forum/view.php?id={new_forum}\"" in new_content
    assert f"{www}/pluginfile.php/{new_ctx}/mod_page/content/0/x.png" in new_content
