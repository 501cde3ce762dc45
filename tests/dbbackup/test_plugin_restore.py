"""A third-party activity module's activity restores as it backs up
(docs/structure.md, "What a plugin adds for restore"): its tables are not
in the Moodle 4.5 schema coursevault ships, and restore refused them
("table 'widget' is not a Moodle 4.5 table", exit 2).  The site's own
catalog now gives their columns."""

from __future__ import annotations

import json
import re
import sqlite3
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import install_distribution

from .clirun import Result
from .twosite import two_course_site

# the choice example of docs/structure.md, as a module of its own package
WIDGET = textwrap.dedent("""
    from coursevault.definitions.common import activity_structure
    from coursevault.structure.elements import Nested, Param, Table, Up
    from coursevault.structure.registry import Plugin, Step


    def widget_structure(ctx):
        widget = Nested(
            "widget", attrs=("id",),
            fields=("name", "intro", "introformat", "publish", "showresults"),
            source=Table("widget", {"id": Param("activityid")}),
        )
        option = Nested(
            "option", attrs=("id",), fields=("text", "maxanswers", "timemodified"),
            source=Table("widget_options", {"choiceid": Up("id")}, order="id ASC"),
        )
        answer = Nested(
            "answer", attrs=("id",), fields=("userid", "optionid", "timemodified"),
            source=Table("widget_answers", {"choiceid": Up("id", element="widget")}),
            userinfo=True, annotate=[("user", "userid")],
        )
        widget.add(Nested("options", children=[option]), Nested("answers", children=[answer]))
        widget.annotate_files("mod_widget", "intro", None)
        return activity_structure(ctx, widget)


    PLUGIN = Plugin("widget", steps=lambda ctx: [Step("widget.xml", build=widget_structure)],
                    extra={"restore_refs": {("widget_answers", "optionid"): "widget_options"}})
""")


def _choice_into_widget(db: Path, course: int) -> int:
    """The site gets the plugin's tables (choice's, renamed) and one of the
    course's choices becomes a widget; its course module id."""
    con = sqlite3.connect(db)
    with con:
        for table in ("choice", "choice_options", "choice_answers"):
            (sql,) = con.execute("SELECT sql FROM sqlite_master WHERE name = ?",
                                 (f"mdl_{table}",)).fetchone()
            new = table.replace("choice", "widget")
            con.execute(re.sub(rf"\bmdl_{table}\b", f"mdl_{new}", sql, count=1))
        (module,) = con.execute("SELECT id FROM mdl_modules WHERE name = 'choice'").fetchone()
        columns = [r[1] for r in con.execute("PRAGMA table_info(mdl_modules)") if r[1] != "id"]
        picked = ", ".join("'widget'" if c == "name" else c for c in columns)
        con.execute(f"INSERT INTO mdl_modules ({', '.join(columns)}) "
                    f"SELECT {picked} FROM mdl_modules WHERE id = ?", (module,))
        (widget,) = con.execute("SELECT id FROM mdl_modules WHERE name = 'widget'").fetchone()
        con.execute("INSERT INTO mdl_config_plugins (plugin, name, value) SELECT 'mod_widget', "
                    "name, value FROM mdl_config_plugins WHERE plugin = 'mod_choice' "
                    "AND name = 'version'")  # as Moodle's install of the plugin writes it
        cm, instance = con.execute(
            "SELECT id, instance FROM mdl_course_modules WHERE module = ? AND course = ? "
            "ORDER BY id LIMIT 1", (module, course)).fetchone()
        con.execute("INSERT INTO mdl_widget SELECT * FROM mdl_choice WHERE id = ?", (instance,))
        for table in ("options", "answers"):
            con.execute(f"INSERT INTO mdl_widget_{table} SELECT * FROM mdl_choice_{table} "
                        "WHERE choiceid = ?", (instance,))
        con.execute("UPDATE mdl_course_modules SET module = ? WHERE id = ?", (widget, cm))
    con.close()
    return int(cm)


def _widget_xml(cv: Callable[..., Result], snapshot: str) -> str:
    (member,) = [line.split()[-1] for line in cv("ls", snapshot, "activities/").out.splitlines()
                 if line.split()[-1].endswith("widget.xml")]
    return cv("cat", snapshot, member).out


def _without_ids(xml: str) -> str:
    """What a restore keeps: the content, not the ids a new site gives."""
    xml = re.sub(r'(id|moduleid|contextid)="\d+"', r'\1=""', xml)
    return re.sub(r"<optionid>\d+</optionid>", "<optionid/>", xml)


def test_a_third_party_activity_restores_as_it_backs_up(
    cv: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    fresh_registry: None,
) -> None:
    db, site, courses = two_course_site(tmp_path)
    cm = _choice_into_widget(db, courses[0])
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    install_distribution(plugins, "cv_mod_widget", WIDGET,
                         "[coursevault.backup.activities]\nwidget = cv_mod_widget:PLUGIN\n")
    monkeypatch.syspath_prepend(str(plugins))
    assert cv("backup", *site, "--course", courses[0], "--site", "s").code == 0
    original = _widget_xml(cv, f"s-{courses[0]}@latest")
    assert "<answer id=" in original and f'moduleid="{cm}"' in original

    restored = cv("restore", f"s-{courses[0]}@latest", *site, "--json")
    assert restored.code == 0, restored
    new = json.loads(restored.out)["courseid"]
    assert cv("backup", *site, "--course", new, "--site", "s").code == 0
    again = _widget_xml(cv, f"s-{new}@latest")
    assert again != original and _without_ids(again) == _without_ids(original)
    # each answer names one of the restored options (restore_refs)
    options = set(re.findall(r'<option id="(\d+)"', again))
    assert options and set(re.findall(r"<optionid>(\d+)</optionid>", again)) <= options

    # one activity merged into the other course
    merged = cv("restore", f"s-{courses[0]}@latest", *site, "--into", courses[1], "--merge",
                "--only", f"activities/widget_{cm}")
    assert merged.code == 0, merged
    assert cv("backup", *site, "--course", courses[1], "--site", "s").code == 0
    assert _without_ids(_widget_xml(cv, f"s-{courses[1]}@latest")) == _without_ids(original)
