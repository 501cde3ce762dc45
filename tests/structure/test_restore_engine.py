"""The generic half of restore on small trees, into a SQLite Moodle schema:
bindings, annotations, refs (mapped, deferred, never mapped twice), the
one-table SQL sources and aliases it reads backwards, and elements
written by code (``writers``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from coursevault.moodledb.schema import create_schema, moodle_metadata
from coursevault.moodledb.sitewriter import SiteWriter
from coursevault.structure.elements import In, Nested, Param, Rows, Sql, Table, Up
from coursevault.structure.restore_engine import (
    IdMap,
    RestoreContext,
    aliases,
    insert_records,
    sql_table,
)
from coursevault.structure.reverse import MemberReader, Record

TABLES = (
    "forum",
    "forum_discussions",
    "forum_posts",
    "groups",
    "rating",
    "scale",
    "choice",
    "choice_options",
    "choice_answers",
)


@pytest.fixture
def rc() -> Iterator[RestoreContext]:
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        create_schema(conn, moodle_metadata("mdl_", TABLES))
        yield RestoreContext(SiteWriter(conn, "mdl_"), IdMap(), {"courseid": 7})
    engine.dispose()


def _forum_tree() -> Nested:
    forum = Nested(
        "forum",
        attrs=("id",),
        fields=("name", "intro", "scale"),
        source=Table("forum", {"id": Param("activityid")}),
    )
    discussion = Nested(
        "discussion",
        attrs=("id",),
        fields=("name", "firstpost", "groupid", "userid"),
        source=Table("forum_discussions", {"forum": Up("id")}),
        annotate=[("group", "groupid")],
    )
    post = Nested(
        "post",
        attrs=("id",),
        fields=("parent", "subject", "message", "userid"),
        source=Table("forum_posts", {"discussion": Up("id")}),
    )
    rating = Nested(
        "rating",
        attrs=("id",),
        fields=(
            "component",
            "ratingarea",
            "scaleid",
            "value",
            "userid",
            "timecreated",
            "timemodified",
        ),
        source=Table("rating", {"itemid": Up("id"), "contextid": Param("contextid")}),
        compute={"value": lambda row, _ctx: row.get("rating")},
        annotate=[("scale", "scaleid")],
    )
    post.add(Nested("ratings", children=[rating]))
    discussion.add(Nested("posts", children=[post]))
    return forum.add(Nested("discussions", children=[discussion]))


FORUM_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<forum id="5"><name>F</name><intro>i</intro><scale>-3</scale>
  <discussions>
    <discussion id="10"><name>D</name><firstpost>101</firstpost><groupid>1</groupid>
      <userid>0</userid>
      <posts>
        <post id="100"><parent>101</parent><subject>reply</subject><message>m</message>
          <userid>0</userid><ratings>
            <rating id="9"><component>mod_forum</component><ratingarea>post</ratingarea>
              <scaleid>-3</scaleid><value>2</value><userid>0</userid>
              <timecreated>1</timecreated><timemodified>1</timemodified></rating>
          </ratings>
        </post>
        <post id="101"><parent>0</parent><subject>first</subject><message>m</message>
          <userid>0</userid><ratings></ratings></post>
      </posts>
    </discussion>
    <discussion id="11"><name>E</name><firstpost>0</firstpost><groupid>-1</groupid>
      <userid>0</userid><posts></posts></discussion>
  </discussions>
</forum>"""

REFS = {
    ("forum_discussions", "firstpost"): "forum_posts",
    ("forum_posts", "parent"): "forum_posts",
    ("forum_discussions", "groupid"): "groups",
}


def _restore_forum(rc: RestoreContext) -> list[Record]:
    rc.ids.set("groups", "1", 41)
    rc.ids.set("scale", "3", 8)
    task = rc.with_params(contextid=77, activityid=None)
    records = list(MemberReader("forum.xml", FORUM_XML).records(_forum_tree()))
    insert_records(task, records, refs=REFS)
    rc.params.update(task.params)
    rc.resolve_deferred()
    return records


def test_children_bind_to_their_parents_new_ids(rc: RestoreContext) -> None:
    records = _restore_forum(rc)
    forum = next(r for r in records if r.name == "forum")
    assert rc.params["activityid"] == forum.new_id  # the task's own row
    rows = list(rc.writer.rows("forum_discussions", {}))
    assert {r["forum"] for r in rows} == {forum.new_id}
    assert {r["course"] for r in rows} == {7}


def test_forward_refs_are_deferred_and_resolved(rc: RestoreContext) -> None:
    _restore_forum(rc)
    first = rc.writer.one("forum_posts", {"subject": "first"})
    reply = rc.writer.one("forum_posts", {"subject": "reply"})
    assert first is not None and reply is not None
    assert reply["parent"] == first["id"]  # written before its parent: deferred
    discussion = rc.writer.one("forum_discussions", {"name": "D"})
    assert discussion is not None and discussion["firstpost"] == first["id"]
    assert not rc.deferred and not rc.unmapped


def test_an_annotated_column_is_not_mapped_again_as_a_ref(rc: RestoreContext) -> None:
    """groupid is both annotated and a ref: mapped once (1 -> 41), and -1
    (all participants) kept -- the two rich discussions that lost their group."""
    _restore_forum(rc)
    groups = {r["name"]: r["groupid"] for r in rc.writer.rows("forum_discussions", {})}
    assert groups == {"D": 41, "E": -1}
    assert not rc.unmapped


def test_a_ratings_negative_scale_names_the_restored_scale(rc: RestoreContext) -> None:
    _restore_forum(rc)
    rating = rc.writer.one("rating", {})
    assert rating is not None
    assert rating["scaleid"] == -8
    assert rating["rating"] == 2  # the alias read back: value is the rating column
    assert rating["contextid"] == 77


def test_an_unknown_reference_is_zero_and_counted(rc: RestoreContext) -> None:
    assert rc.map_ref("groups", "99", column="groupid") == 0
    assert rc.unmapped["groups via groupid"] == 1
    assert rc.map_ref("groups", None, column="groupid") is None
    assert rc.map_ref("scale", "-4", column="scaleid") == 0


def test_aliases_are_found_by_probing_computed_fields() -> None:
    node = Nested(
        "rating",
        fields=("value", "twice"),
        compute={
            "value": lambda row, _ctx: row.get("rating"),
            "twice": lambda row, _ctx: int(row["rating"]) * 2,  # a computation, not an alias
        },
    )
    assert aliases(node) == {"value": "rating"}


def test_sql_table_reads_one_table_sources_only() -> None:
    one = Sql(
        "SELECT * FROM {workshop_submissions} WHERE workshopid = ? AND example = 0", [Up("id")]
    )
    table = sql_table(one)
    assert table is not None and table.table == "workshop_submissions"
    assert table.where == {"workshopid": Up("id")}
    aliased = Sql("SELECT s.* FROM {event} s WHERE s.courseid = ?", [Param("courseid")])
    assert sql_table(aliased) == Table("event", {"courseid": Param("courseid")})
    assert (
        sql_table(
            Sql(
                "SELECT t.* FROM {tag} t JOIN {tag_instance} ti ON ti.tagid = t.id "
                "WHERE ti.itemid = ?",
                [Up("id")],
            )
        )
        is None
    )
    assert sql_table(Sql("SELECT * FROM {tag} WHERE id IN (?)", [In(Up("id"))])) is None


def test_writers_take_elements_that_are_not_one_row(rc: RestoreContext) -> None:
    written: list[tuple[str | None, int | None]] = []

    def write(_rc: RestoreContext, rec: Record) -> None:
        written.append((rec.values.get("rawname"), rec.up().new_id))

    choice = Nested(
        "choice",
        attrs=("id",),
        fields=("name", "intro"),
        source=Table("choice", {"id": Param("activityid")}),
    )
    tag = Nested(
        "tag",
        attrs=("id",),
        fields=("rawname",),
        source=Sql(
            "SELECT t.* FROM {tag} t JOIN {tag_instance} ti ON ti.tagid = t.id WHERE ti.itemid = ?",
            [Up("id")],
        ),
    )
    choice.add(Nested("tags", children=[tag]))
    xml = (
        b'<choice id="3"><name>C</name><intro>i</intro><tags><tag id="1"><rawname>Blue</rawname></tag>'
        b"</tags></choice>"
    )
    task = rc.with_params(activityid=None)
    insert_records(task, MemberReader("choice.xml", xml).records(choice), writers={"tag": write})
    assert written == [("Blue", task.params["activityid"])]


def test_user_data_is_skipped_without_users(rc: RestoreContext) -> None:
    choice = Nested(
        "choice",
        attrs=("id",),
        fields=("name", "intro"),
        source=Table("choice", {"id": Param("activityid")}),
    )
    answer = Nested(
        "answer",
        attrs=("id",),
        fields=("userid", "optionid"),
        source=Table("choice_answers", {"choiceid": Up("id")}),
        userinfo=True,
    )
    choice.add(Nested("answers", children=[answer]))
    xml = (
        b'<choice id="3"><name>C</name><intro>i</intro><answers><answer id="4"><userid>2</userid>'
        b"<optionid>0</optionid></answer></answers></choice>"
    )
    rc.users = False
    counts = insert_records(
        rc.with_params(activityid=None), MemberReader("choice.xml", xml).records(choice)
    )
    assert counts == {"choice": 1}


def test_rows_sources_need_a_declared_table(rc: RestoreContext) -> None:
    option = Nested(
        "option", attrs=("id",), fields=("text",), source=Rows(lambda _ctx, _parent: [])
    )
    root = Nested("options", children=[option])
    xml = b'<options><option id="1"><text>a</text></option></options>'
    assert insert_records(rc, MemberReader("o.xml", xml).records(root)) == {}
    counts: Any = insert_records(
        rc, MemberReader("o.xml", xml).records(root), tables={"option": "choice_options"}
    )
    assert counts == {"choice_options": 1}
    assert rc.ids.get("choice_options", "1") is not None


def test_sql_table_reads_a_filtering_join_of_its_own_rows() -> None:
    """A rubric's fillings: rf.* of its FROM table, the joins only filter,
    the binding is on rf -- one row of gradingform_rubric_fillings each."""
    fillings = Sql(
        "SELECT rf.* FROM {gradingform_rubric_fillings} rf"
        " JOIN {grading_instances} gi ON gi.id = rf.instanceid"
        " WHERE rf.instanceid = ?",
        [Up("id", element="instance")],
    )
    assert sql_table(fillings) == Table(
        "gradingform_rubric_fillings", {"instanceid": Up("id", element="instance")}
    )
    other = Sql(
        "SELECT rf.* FROM {gradingform_rubric_fillings} rf"
        " JOIN {grading_instances} gi ON gi.id = rf.instanceid"
        " WHERE gi.definitionid = ?",
        [Up("id")],
    )
    assert sql_table(other) is None  # bound through the joined table
    columns = Sql(
        "SELECT rf.id, gi.itemid FROM {gradingform_rubric_fillings} rf"
        " JOIN {grading_instances} gi ON gi.id = rf.instanceid"
        " WHERE rf.instanceid = ?",
        [Up("id")],
    )
    assert sql_table(columns) is None


def test_sql_table_reads_a_column_list_and_its_text_literals() -> None:
    grades = Sql(
        "SELECT id, dimensionid, grade FROM {workshop_grades} "
        "WHERE strategy = 'accumulative' AND assessmentid = ?",
        [Up("id")],
    )
    assert sql_table(grades) == Table(
        "workshop_grades", {"assessmentid": Up("id"), "strategy": "accumulative"}
    )
    expression = Sql("SELECT COUNT(id) FROM {workshop_grades} WHERE assessmentid = ?", [Up("id")])
    assert sql_table(expression) is None
    either = Sql(
        "SELECT * FROM {event} WHERE courseid = ? "
        "AND (eventtype = 'course' OR eventtype = 'group')",
        [Param("courseid")],
    )
    assert sql_table(either) == Table("event", {"courseid": Param("courseid")})


def _scaled_forum(scale: str, scaleid: str) -> tuple[Nested, bytes]:
    """A forum that annotates its scale, as mod_forum's definition does,
    with one rating."""
    forum = Nested(
        "forum",
        attrs=("id",),
        fields=("name", "intro", "scale"),
        source=Table("forum", {"id": Param("activityid")}),
        annotate=[("scale", "scale")],
    )
    rating = Nested(
        "rating",
        attrs=("id",),
        fields=(
            "component",
            "ratingarea",
            "scaleid",
            "rating",
            "userid",
            "timecreated",
            "timemodified",
        ),
        source=Table("rating", {"itemid": Param("activityid"), "contextid": Param("contextid")}),
        annotate=[("scale", "scaleid")],
    )
    forum.add(Nested("ratings", children=[rating]))
    xml = (
        f'<forum id="5"><name>F</name><intro>i</intro><scale>{scale}</scale><ratings>'
        f'<rating id="9"><component>mod_forum</component><ratingarea>post</ratingarea>'
        f"<scaleid>{scaleid}</scaleid><rating>2</rating><userid>0</userid>"
        f"<timecreated>1</timecreated><timemodified>1</timemodified></rating>"
        f"</ratings></forum>"
    ).encode()
    return forum, xml


def test_a_positive_scale_is_points_and_kept(rc: RestoreContext) -> None:
    """``process_forum`` and ``process_forum_rating`` map a negative scale
    only: 100 points stay 100, whatever scale 100 the backup may hold."""
    rc.ids.set("scale", "100", 8)
    tree, xml = _scaled_forum("100", "100")
    task = rc.with_params(activityid=None, contextid=77)
    insert_records(task, MemberReader("forum.xml", xml).records(tree))
    forum, rating = rc.writer.one("forum", {}), rc.writer.one("rating", {})
    assert forum is not None and rating is not None
    assert (forum["scale"], rating["scaleid"]) == (100, 100)
    assert not rc.unmapped


def test_an_annotated_negative_scale_is_mapped_once(rc: RestoreContext) -> None:
    """The module's hook (restore_final.negative_scale) leaves a scale the
    annotations mapped: scale 3 became 8, and the backup's own scale 8 (now
    9) must not take it over."""
    from coursevault.definitions.restore_final import negative_scale

    rc.ids.set("scale", "3", 8)
    rc.ids.set("scale", "8", 9)
    tree, xml = _scaled_forum("-3", "-3")
    insert_records(
        rc.with_params(activityid=None, contextid=77),
        MemberReader("forum.xml", xml).records(tree),
        hooks={"forum": negative_scale},
    )
    forum, rating = rc.writer.one("forum", {}), rc.writer.one("rating", {})
    assert forum is not None and rating is not None
    assert (forum["scale"], rating["scaleid"]) == (-8, -8)
