"""Tags, comments and completion restored against the trees that wrote them,
into a SQLite Moodle schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from coursevault.definitions import restore_common
from coursevault.definitions.restore_plan import _build_context
from coursevault.definitions.tags import TAGS_SQL, context_tags
from coursevault.moodledb.schema import create_schema, moodle_metadata
from coursevault.moodledb.sitewriter import SiteWriter
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import In, Param, Sql, Up
from coursevault.structure.restore_engine import IdMap, RestoreContext
from coursevault.structure.reverse import MemberReader

TABLES = (
    "config",
    "tag",
    "tag_instance",
    "tag_area",
    "tag_coll",
    "comments",
    "course_modules_completion",
    "course_modules_viewed",
)


@pytest.fixture
def rc() -> Iterator[RestoreContext]:
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        create_schema(conn, moodle_metadata("mdl_", TABLES))
        writer = SiteWriter(conn, "mdl_")
        writer.insert("config", {"name": "usetags", "value": "1"})
        writer.insert("tag_coll", {"name": "", "isdefault": 1, "sortorder": 0, "searchable": 1})
        writer.insert(
            "tag_area",
            {"component": "mod_book", "itemtype": "book_chapters", "enabled": 1, "tagcollid": 1},
        )
        writer.insert(
            "tag_area",
            {"component": "mod_wiki", "itemtype": "wiki_pages", "enabled": 0, "tagcollid": 1},
        )
        yield RestoreContext(writer, IdMap(), {"courseid": 7, "contextid": 70, "now": 5})
    engine.dispose()


@pytest.fixture
def ctx_stub(rc: RestoreContext) -> TaskContext:
    """The context restore builds its trees with (every setting on)."""
    return _build_context(rc.writer, users=True)


def test_tag_binding_reads_the_tag_instance_columns() -> None:
    assert restore_common.tag_binding(Sql(TAGS_SQL, ["wiki_pages", "mod_wiki", Up("id")])) == {
        "itemtype": "wiki_pages",
        "component": "mod_wiki",
        "itemid": Up("id"),
    }
    module = Sql(
        "SELECT ti.itemid AS cv_key, t.id FROM {tag} t JOIN {tag_instance} ti "
        "ON ti.tagid = t.id WHERE ti.itemtype = 'course_modules' AND "
        "ti.component = 'core' AND ti.itemid IN (?)",
        [In(Param("moduleid"))],
    )
    assert restore_common.tag_binding(module) == {
        "itemtype": "course_modules",
        "component": "core",
        "itemid": Param("moduleid"),
    }
    assert restore_common.tag_binding(Sql("SELECT * FROM {tag} WHERE id = ?", [1])) is None


def test_context_tags_name_the_restored_items(rc: RestoreContext, ctx_stub: TaskContext) -> None:
    rc.ids.set("book_chapters", "4", 40)
    tree = context_tags(ctx_stub, "chaptertags", "mod_book", "book_chapters", userinfo=False)
    xml = (
        b"<chaptertags><tag id='1'><itemid>4</itemid><rawname>Red Fox</rawname></tag>"
        b"<tag id='2'><itemid>4</itemid><rawname>red fox</rawname></tag>"
        b"<tag id='3'><itemid>5</itemid><rawname>lost</rawname></tag></chaptertags>"
    )
    for rec in MemberReader("book.xml", xml).records(tree):
        if rec.name == "tag":
            restore_common.restore_tag_record(rc, rec)
    tags = list(rc.writer.rows("tag", {}))
    assert [(t["name"], t["rawname"], t["tagcollid"]) for t in tags] == [("red fox", "Red Fox", 1)]
    instances = list(rc.writer.rows("tag_instance", {}))
    assert [(i["itemid"], i["contextid"], i["component"], i["ordering"]) for i in instances] == [
        (40, 70, "mod_book", 1)
    ]  # the same tag twice is one instance
    assert rc.unmapped["book_chapters via tag"] == 1  # item 5 is not restored


def test_a_disabled_area_gets_no_tags(rc: RestoreContext) -> None:
    restore_common.add_item_tag(rc, "mod_wiki", "wiki_pages", 3, 70, "x")
    restore_common.add_item_tag(rc, "core", "course_modules", 3, 70, "a")
    restore_common.add_item_tag(rc, "core", "course_modules", 3, 70, "b")
    instances = list(rc.writer.rows("tag_instance", {}))
    # an item's first tag at 1 (MAX(ordering) + 1 of none): every tag
    # instance Moodle's restore made on the MariaDB reference site
    assert [(i["itemtype"], i["ordering"]) for i in instances] == [
        ("course_modules", 1),
        ("course_modules", 2),
    ]


COMMENTS = b"""<comments>
  <comment id="1"><component>mod_glossary</component><commentarea>glossary_entry</commentarea>
    <itemid>4</itemid><content>kept</content><format>0</format><userid>2</userid>
    <timecreated>1</timecreated></comment>
  <comment id="2"><component>mod_glossary</component><commentarea>glossary_entry</commentarea>
    <itemid>5</itemid><content>entry not restored</content><format>0</format>
    <userid>2</userid><timecreated>2</timecreated></comment>
  <comment id="3"><component>block_comments</component><commentarea>page_comments</commentarea>
    <itemid>0</itemid><content>page</content><format>0</format><userid>2</userid>
    <timecreated>3</timecreated></comment>
  <comment id="4"><component>block_comments</component><commentarea>page_comments</commentarea>
    <itemid>0</itemid><content>author not restored</content><format>0</format>
    <userid>9</userid><timecreated>4</timecreated></comment>
</comments>"""


def test_comments_name_restored_items_and_users(rc: RestoreContext, ctx_stub: TaskContext) -> None:
    rc.ids.set("glossary_entries", "4", 44)
    rc.ids.set("user", "2", 22)
    restore_common.restore_comments(rc, ctx_stub, "comments.xml", COMMENTS)
    rows = [
        (r["content"], r["itemid"], r["userid"], r["contextid"])
        for r in rc.writer.rows("comments", {})
    ]
    assert rows == [("kept", 44, 22, 70), ("page", 0, 22, 70)]


def test_completion_is_user_data(rc: RestoreContext, ctx_stub: TaskContext) -> None:
    xml = (
        b"<completions><completion id='1'><userid>2</userid><completionstate>1"
        b"</completionstate><timemodified>3</timemodified></completion>"
        b"<completion id='2'><userid>9</userid><completionstate>1</completionstate>"
        b"<timemodified>3</timemodified></completion>"
        b"<completionviews><completionview id='1'><userid>2</userid>"
        b"<timecreated>4</timecreated></completionview></completionviews></completions>"
    )
    rc.ids.set("user", "2", 22)
    task = rc.with_params(moduleid=12)
    restore_common.restore_completion(task, ctx_stub, "completion.xml", xml)
    done = list(rc.writer.rows("course_modules_completion", {}))
    assert [(r["coursemoduleid"], r["userid"]) for r in done] == [(12, 22)]
    viewed = list(rc.writer.rows("course_modules_viewed", {}))
    assert [(r["coursemoduleid"], r["userid"]) for r in viewed] == [(12, 22)]
    rc.users = False
    restore_common.restore_completion(rc.with_params(moduleid=13), ctx_stub, "completion.xml", xml)
    assert len(list(rc.writer.rows("course_modules_completion", {}))) == 1
