"""Write src/coursevault/moodledb/site45.json: what a demo site copies from the reference site.

A demo site (``coursevault demo-site``) should look like what Moodle itself
writes, column for column, without this project re-deriving Moodle's PHP.  So
it starts from the reference Moodle 4.5 site (../shared/moodle-site/), loaded
into PostgreSQL:

- *site rows*, copied as they are: the configuration (``config``,
  ``config_plugins``: versions, backup settings), ``modules``, ``block``,
  the standard roles and what they may assign, licences, glossary formats,
  tag areas, site filters, the guest and admin users.  Secrets (the site
  identifier, salts, the backup encryption key, LTI private keys, password
  hashes) are left out or blanked; the generator makes its own per seed.
- *templates*: one or a few real rows per table, every column, from the
  generator-made course gen_s (id 2) and the hand-made course rich (id 38);
  the generator overrides ids, links, names, texts and times and keeps the
  rest (formats, flags, serialised options) as Moodle wrote them.

    .venv/bin/python scripts/moodle_site_data.py postgresql+psycopg://postgres@127.0.0.1/cv_ref
"""

from __future__ import annotations

import argparse
import decimal
import json
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

OUT = Path(__file__).resolve().parents[1] / "src" / "coursevault" / "moodledb" / "site45.json"

SITE_TABLES = {
    "config": "name not in ('siteidentifier', 'calendar_exportsalt', 'badges_badgesalt')",
    "config_plugins": "name not in ('backup_encryptkey', 'privatekey', 'lti_13_privatekey', 'kid', 'lti_13_kid')",
    "modules": "true",
    "block": "true",
    "role": "true",
    "role_context_levels": "true",
    "role_allow_assign": "true",
    "role_allow_override": "true",
    "role_allow_switch": "true",
    "role_allow_view": "true",
    "license": "true",
    "glossary_formats": "true",
    "tag_coll": "true",
    "tag_area": "true",
    "filter_active": "contextid = 1",
    "user": "id in (1, 2)",
    "course": "id = 1",
    "mnet_host": "true",
    "mnet_application": "true",
}
# key -> (table, where): the rows a generated row starts from
TEMPLATES = {
    "user": ("user", "id = 3"),
    "course": ("course", "id = 2"),
    "course_categories": ("course_categories", "id = 1"),
    "context": ("context", "id = 11"),
    "course_sections": ("course_sections", "course = 2 and section = 1"),
    "course_modules": ("course_modules", "id = 1"),
    "course_format_options": ("course_format_options", "courseid = 2"),
    "enrol": ("enrol", "courseid = 2"),
    "user_enrolments": ("user_enrolments", "enrolid = 1 order by id limit 1"),
    "role_assignments": ("role_assignments", "contextid = 11 order by id limit 1"),
    "grade_categories": ("grade_categories", "courseid = 2"),
    "grade_items:course": ("grade_items", "courseid = 2 and itemtype = 'course'"),
    "grade_items:assign": (
        "grade_items",
        "courseid = 2 and itemmodule = 'assign' order by id limit 1",
    ),
    "grade_grades": (
        "grade_grades",
        "finalgrade is not null and itemid in (select id from mdl_grade_items where courseid = 38 and itemmodule = 'assign') order by id limit 1",
    ),
    "assign": ("assign", "course = 2 order by id limit 1"),
    "assign_plugin_config": ("assign_plugin_config", "assignment = 24 order by id"),
    "assign_submission": ("assign_submission", "assignment = 24 order by id limit 1"),
    "assignsubmission_onlinetext": (
        "assignsubmission_onlinetext",
        "assignment = 24 order by id limit 1",
    ),
    "assign_grades": ("assign_grades", "assignment = 24 order by id limit 1"),
    "assignfeedback_comments": ("assignfeedback_comments", "assignment = 24 order by id limit 1"),
    "forum": ("forum", "course = 2"),
    "forum_discussions": ("forum_discussions", "course = 2 order by id limit 1"),
    "forum_posts": (
        "forum_posts",
        "id = (select firstpost from mdl_forum_discussions where course = 2 order by id limit 1)",
    ),
    "page": ("page", "course = 2 order by id limit 1"),
    "resource": ("resource", "course = 2 order by id limit 1"),
    "files:content": ("files", "component = 'mod_resource' and filename = 'resource1.txt'"),
    "files:dir": ("files", "component = 'mod_resource' and filename = '.' order by id limit 1"),
    "label": ("label", "course = 38 order by id limit 1"),
    "url": ("url", "course = 38 order by id limit 1"),
    "folder": ("folder", "course = 38 order by id limit 1"),
    "glossary": ("glossary", "course = 38 order by id limit 1"),
    "glossary_entries": (
        "glossary_entries",
        "glossaryid in (select id from mdl_glossary where course = 38) order by id limit 1",
    ),
    "choice": ("choice", "course = 38 order by id limit 1"),
    "choice_options": (
        "choice_options",
        "choiceid in (select id from mdl_choice where course = 38) order by id limit 1",
    ),
    "choice_answers": (
        "choice_answers",
        "choiceid in (select id from mdl_choice where course = 38) order by id limit 1",
    ),
    "logstore_standard_log": (
        "logstore_standard_log",
        "courseid = 38 and eventname = '\\mod_forum\\event\\assessable_uploaded' order by id limit 1",
    ),
}
BLANKED = {("user", "password"): ""}


def _value(table: str, column: str, value: Any) -> Any:
    if (table, column) in BLANKED:
        return BLANKED[(table, column)]
    if isinstance(value, decimal.Decimal):
        return str(value)  # numbers as PostgreSQL prints them: 100.00000
    return value


def _rows(conn: sa.Connection, table: str, where: str, prefix: str) -> list[dict[str, Any]]:
    result = conn.execute(sa.text(f"select * from {prefix}{table} where {where}"))
    rows = [{k: _value(table, k, v) for k, v in row._mapping.items()} for row in result]
    if not rows:
        raise SystemExit(f"no rows in {table} where {where}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", help="SQLAlchemy URL of the loaded reference database")
    parser.add_argument("--prefix", default="mdl_")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    engine = sa.create_engine(args.url)
    data: dict[str, Any] = {"site": {}, "templates": {}}
    with engine.connect() as conn:
        for table, where in SITE_TABLES.items():
            rows = _rows(conn, table, where + " order by id", args.prefix)
            data["site"][table] = {
                "columns": list(rows[0]),
                "rows": [list(r.values()) for r in rows],
            }
        for key, (table, where) in TEMPLATES.items():
            data["templates"][key] = {
                "table": table,
                "rows": _rows(conn, table, where, args.prefix),
            }
    text = _dump(data)
    args.out.write_text(text)
    print(f"wrote {args.out} ({len(text)} bytes)", file=sys.stderr)


def _dump(data: dict[str, Any]) -> str:
    """JSON with one row a line, so a regenerated file diffs row by row."""

    def enc(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    out = ['{"site": {']
    for i, (table, block) in enumerate(data["site"].items()):
        rows = ",\n".join(enc(r) for r in block["rows"])
        sep = "," if i < len(data["site"]) - 1 else ""
        out.append(f'{enc(table)}: {{"columns": {enc(block["columns"])}, "rows": [\n{rows}]}}{sep}')
    out.append('}, "templates": {')
    for i, (key, block) in enumerate(data["templates"].items()):
        rows = ",\n".join(enc(r) for r in block["rows"])
        sep = "," if i < len(data["templates"]) - 1 else ""
        out.append(f'{enc(key)}: {{"table": {enc(block["table"])}, "rows": [\n{rows}]}}{sep}')
    out.append("}}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
