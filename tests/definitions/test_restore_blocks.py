"""Blocks found as folders and restored under their parent's new context
(SQLite Moodle schema)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from coursevault.definitions.restore_blocks import restore_blocks
from coursevault.definitions.restore_plan import _build_context
from coursevault.moodledb.schema import create_schema, moodle_metadata
from coursevault.moodledb.sitewriter import SiteWriter
from coursevault.structure.restore_engine import IdMap, RestoreContext

TABLES = ("config", "block", "block_instances", "block_positions", "context",
          "role_capabilities", "role_assignments", "comments", "tag_area")

BLOCK = b"""<?xml version="1.0" encoding="UTF-8"?>
<block id="22" contextid="407" version="2024100700">
  <blockname>html</blockname>
  <parentcontextid>383</parentcontextid>
  <showinsubcontexts>0</showinsubcontexts>
  <pagetypepattern>course-view-*</pagetypepattern>
  <subpagepattern>$@NULL@$</subpagepattern>
  <defaultregion>side-pre</defaultregion>
  <defaultweight>1</defaultweight>
  <configdata>Tzo4OiJzdGRDbGFzcyI6MDp7fQ==</configdata>
  <timecreated>1796307838</timecreated>
  <timemodified>1796307838</timemodified>
  <block_positions>
    <block_position id="1"><contextid>383</contextid><pagetype>course-view-topics</pagetype>
      <subpage></subpage><visible>0</visible><region>side-post</region><weight>3</weight>
    </block_position>
    <block_position id="2"><contextid>999</contextid><pagetype>x</pagetype>
      <subpage></subpage><visible>1</visible><region>side-pre</region><weight>0</weight>
    </block_position>
  </block_positions>
</block>"""
COMMENTS = b"""<comments><comment id="1"><component>block_comments</component>
<commentarea>page_comments</commentarea><itemid>0</itemid><content>hi</content>
<format>0</format><userid>5</userid><timecreated>1</timecreated></comment></comments>"""


@pytest.fixture
def rc() -> Iterator[RestoreContext]:
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        create_schema(conn, moodle_metadata("mdl_", TABLES))
        writer = SiteWriter(conn, "mdl_")
        writer.insert("block", {"name": "html", "cron": 0, "lastcron": 0, "visible": 1})
        course = writer.insert("context", {"contextlevel": 50, "instanceid": 3, "depth": 3,
                                           "path": "/1/3/", "locked": 0})
        writer.update("context", course, {"path": f"/1/3/{course}"})
        ids = IdMap()
        ids.set("user", "5", 55)
        yield RestoreContext(writer, ids, {"courseid": 3, "contextid": course})
    engine.dispose()


def test_a_block_folder_becomes_an_instance_in_its_own_context(rc: RestoreContext) -> None:
    files = {"course/blocks/html_22/block.xml": BLOCK,
             "course/blocks/html_22/comments.xml": COMMENTS,
             "course/blocks/nothere_23/block.xml": BLOCK.replace(b">html<", b">nothere<")}
    course = int(rc.params["contextid"])
    contexts = {"383": course}
    restored = restore_blocks(rc, _build_context(rc.writer, users=True), "course", files.get,
                              lambda _path: ["html_22", "nothere_23"], contexts)
    assert restored == 1
    assert rc.warnings == ["course/blocks/nothere_23: block 'nothere' is not installed "
                           "in this site: left out"]
    block = rc.writer.one("block_instances", {})
    assert block is not None
    assert (block["blockname"], block["parentcontextid"], block["defaultweight"]) == (
        "html", course, 1)
    assert block["configdata"] == "Tzo4OiJzdGRDbGFzcyI6MDp7fQ=="
    ctx = rc.writer.one("context", {"contextlevel": 80})
    assert ctx is not None and ctx["instanceid"] == block["id"]
    assert (ctx["depth"], ctx["path"]) == (4, f"/1/3/{course}/{ctx['id']}")
    assert contexts["407"] == ctx["id"]  # its files.xml rows find their context
    positions = list(rc.writer.rows("block_positions", {}))
    assert [(p["contextid"], p["region"], p["weight"]) for p in positions] == [
        (course, "side-post", 3)]  # the position in an unknown context is left out
    assert rc.unmapped["context via block_positions.contextid"] == 1
    comment = rc.writer.one("comments", {})
    assert comment is not None and (comment["contextid"], comment["userid"]) == (ctx["id"], 55)
    assert rc.file_areas[("block_html", "content")] is None
