"""questions.xml into the question bank (``restore_create_categories_and_questions``
with ``restore_dbops::precheck_categories_and_questions``), and the ids a
quiz's rows name in it.

Where a category goes depends on its context in the source site:

- the course's context: a new category in the new course's context;
- an activity's context: a new category, placed in the course's context
  until that activity is restored, then moved into the activity's new
  context (:func:`move_module_categories`; a category of an activity left
  out stays in the course's with its questions -- where Moodle's restore
  leaves them out: the corpus's availability-setting and m400 courses);
- a system or course-category context: on the same site, when that
  context still has a category of the same ``stamp``, that category -- and
  each question already in it with the same stamp and version is that
  question, not a copy; other questions are added to it.  From another
  site, or when the context is gone, a new category in the course.

Everything under a category -- bank entries, versions, questions with their
question type's rows (answers, options...), hints -- goes through the
definitions that wrote it.  A version names its question, which is written
after it (``Up("questionid")``): the engine sets it once the question has
its id.  Ids inside question type rows that name other rows of the bank
(a true/false question's two answers, a numerical answer) are ``REFS``; a
multianswer question's ``sequence`` of subquestion ids is rewritten in
:func:`finish_questions`.  A created question gets its tags (``add_item_tag``);
a matched one keeps its own.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from coursevault.definitions import final_questions
from coursevault.definitions.restore_common import add_item_tag
from coursevault.definitions.restore_files import restoring_user
from coursevault.structure import registry
from coursevault.structure.context import TaskContext
from coursevault.structure.restore_engine import RestoreContext, insert_records
from coursevault.structure.reverse import MemberReader, Record

CONTEXT_SYSTEM, CONTEXT_COURSECAT, CONTEXT_COURSE, CONTEXT_MODULE = 10, 40, 50, 70
REFS: dict[tuple[str, str], str] = {
    ("question_categories", "parent"): "question_categories",
    ("question", "parent"): "question",
    ("question_truefalse", "trueanswer"): "question_answers",
    ("question_truefalse", "falseanswer"): "question_answers",
    ("question_numerical", "answer"): "question_answers",
    ("question_calculated", "answer"): "question_answers",
}
TABLES = {"question_category": "question_categories"}


def restore_questions(
    rc: RestoreContext, ctx: TaskContext, data: bytes, *, same_site: bool
) -> dict[str, int]:
    """Create or match every category and question; counts by outcome."""
    reader = MemberReader("questions.xml", data)
    # every type's part: the backup's questions may be of any installed type
    tree = final_questions.questions_tree(ctx, lambda _c, _p: [], parts=True)
    records = list(reader.records(tree))
    rc.warnings.extend(undefined_parts(data, records))
    # attempts' step data are recoded by their question's type (restore_quiz)
    rc.later["qtypes"] = [
        {str(r.old_id()): str(r.values.get("qtype") or "") for r in records if r.name == "question"}
    ]
    counts = {"categories": 0, "categories_matched": 0, "questions": 0, "questions_matched": 0}

    def category(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
        return _category(rc, rec, row, same_site, counts)

    # each record's place: an entry's version and question follow it
    places = {id(rec): i for i, rec in enumerate(records)}

    def entry(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
        return _entry(rc, rec, row, records, places[id(rec)], counts)

    insert_records(
        rc,
        records,
        refs=REFS,
        tables=TABLES,
        hooks={
            "question_category": category,
            "question_bank_entry": entry,
            "question": _question_users,
            "multianswer": _multianswer,
        },
        writers={"tag": _question_tag},
    )
    for rec in records:
        if rec.name == "question" and rec.new_id is not None and not rec.extra.get("matched"):
            counts["questions"] += 1
    return counts


_BANK_PART = re.compile(rb"<plugin_qbank_(\w+?)_question>")


def undefined_parts(data: bytes, records: list[Record]) -> list[str]:
    """A warning for each question type, and each question bank plugin,
    whose part of questions.xml no definition reads: the questions are
    restored (as Moodle's restore keeps a question of a type it lacks, which
    Moodle then shows as of a missing type), that part of them is not."""
    qtypes = registry.subplugins("qtype")
    counts = Counter(str(r.values.get("qtype") or "") for r in records if r.name == "question")
    warnings = [
        f"questions.xml: {n} question{'s' if n > 1 else ''} of type {qtype!r}: no definition "
        f"for qtype_{qtype}: restored without the type's own data"
        for qtype, n in sorted(counts.items())
        if qtype and f"qtype_{qtype}" not in qtypes
    ]
    banks = registry.subplugins("qbank")
    warnings += [
        f"questions.xml: no definition for qbank_{name}: its data of the questions left out"
        for name in sorted({m.decode() for m in _BANK_PART.findall(data)})
        if f"qbank_{name}" not in banks
    ]
    return warnings


def _category(
    rc: RestoreContext, rec: Record, row: dict[str, Any], same_site: bool, counts: dict[str, int]
) -> bool:
    level = int(row.get("contextlevel") or 0)
    old_context = str(row.get("contextid") or "")
    course_context = int(rc.param("coursecontextid"))
    row["contextid"] = rec.extra["contextid"] = course_context
    if level == CONTEXT_COURSE and rc.params.get("merge"):
        found = rc.writer.one(
            "question_categories", {"contextid": course_context, "stamp": row.get("stamp") or ""}
        )
        if found is not None:  # merging again: the course's own copy
            rec.new_id = int(found["id"])
            rec.extra["matched"] = True
            counts["categories_matched"] += 1
            return False
    if level == CONTEXT_MODULE:
        rc.later.setdefault("module_categories", []).append((rec, old_context))
    elif (
        level in (CONTEXT_SYSTEM, CONTEXT_COURSECAT)
        and same_site
        and rc.writer.one("context", {"id": old_context}) is not None
    ):
        found = rc.writer.one(
            "question_categories", {"contextid": old_context, "stamp": row.get("stamp") or ""}
        )
        row["contextid"] = rec.extra["contextid"] = int(old_context)
        if found is not None:
            rec.new_id = int(found["id"])
            rec.extra["matched"] = True
            counts["categories_matched"] += 1
            return False
    counts["categories"] += 1
    return True


def _entry(
    rc: RestoreContext,
    rec: Record,
    row: dict[str, Any],
    records: list[Record],
    place: int,
    counts: dict[str, int],
) -> bool:
    """An entry of a matched category whose question (stamp and version) the
    site has is that entry: its version and question ids are mapped, nothing
    below it is written.  ``place``: its index in ``records``."""
    parent = rec.up("id", "question_category")
    # an owner not restored is the restoring user, as for a question's creator
    row["ownerid"] = rc.ids.get("user", row.get("ownerid")) or restoring_user(rc)
    if not parent.extra.get("matched"):
        return True
    version, question = _version_and_question(records, place)
    if version is None or question is None:
        return True
    found = rc.writer.scalar(
        "SELECT qv.id FROM {question_versions} qv JOIN {question} q ON q.id = qv.questionid "
        "JOIN {question_bank_entries} qbe ON qbe.id = qv.questionbankentryid "
        "WHERE qbe.questioncategoryid = :cat AND q.stamp = :stamp AND qv.version = :version",
        {
            "cat": parent.new_id,
            "stamp": question.values.get("stamp") or "",
            "version": int(version.values.get("version") or 0),
        },
    )
    if found is None:
        return True
    existing = rc.writer.one("question_versions", {"id": found})
    assert existing is not None
    rec.new_id = int(existing["questionbankentryid"])
    rec.extra["skipped"] = True
    question.extra["matched"] = True
    rc.ids.set("question_versions", version.old_id(), int(found))
    rc.ids.set("question", question.old_id(), int(existing["questionid"]))
    counts["questions_matched"] += 1
    return False


def _version_and_question(
    records: list[Record], place: int
) -> tuple[Record | None, Record | None]:
    """The first version and question after the entry at ``place``, before
    the next entry or category (``records.index`` here made a bank of n
    questions merged again cost n^2 record comparisons)."""
    version = question = None
    for i in range(place + 1, len(records)):
        rec = records[i]
        if rec.name == "question_bank_entry" or rec.name == "question_category":
            break
        if rec.name == "question_versions" and version is None:
            version = rec
        elif rec.name == "question" and question is None:
            question = rec
    return version, question


def _question_users(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
    """Who created and modified a question: the restored user, else the
    restoring user (the site's first admin) -- what Moodle's restore left in
    the reference site's restored courses (course 4: 2, the admin, for users
    its backup did not hold)."""
    for column in ("createdby", "modifiedby"):
        row[column] = rc.ids.get("user", row.get(column)) or restoring_user(rc)
    return True


def _multianswer(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
    rc.later.setdefault("multianswer", []).append((rec, str(row.get("sequence") or "")))
    return True


def _question_tag(rc: RestoreContext, rec: Record) -> None:
    """A question's ``<tag>`` (``process_tag``): added to a question the
    restore created (one it matched keeps its own), in the tag's context
    when the restore has mapped it (the course's, a user's), else in its
    category's -- which for an activity's category is the course's until
    the activity is restored (:func:`move_module_categories` moves it)."""
    question = rec.up("id", "question")
    rawname = rec.values.get("rawname")
    if question.new_id is None or question.extra.get("matched") or not rawname:
        return
    category = rec.up("id", "question_category")
    contexts: dict[str, int] = rc.later.get("contexts", [{}])[0]
    contextid = contexts.get(str(rec.values.get("contextid") or ""))
    if contextid is None:
        contextid = int(category.extra.get("contextid") or rc.param("coursecontextid"))
        follows = True
    else:
        follows = False
    instance = add_item_tag(
        rc, "core_question", "question", question.new_id, contextid, str(rawname)
    )
    if instance is not None and follows:
        rc.later.setdefault("question_tags", []).append((instance, category))


def move_module_categories(rc: RestoreContext, contexts: dict[str, int]) -> None:
    """Categories of activities' contexts into the restored activities'
    contexts, and the tags of their questions that were in the category's
    context with them (``core_tag_tag::change_items_context``)."""
    moved: dict[int, int] = {}  # category -> its new context
    for rec, old_context in rc.later.get("module_categories", []):
        new_context = contexts.get(old_context)
        if rec.new_id is not None and new_context is not None:
            rc.writer.update("question_categories", rec.new_id, {"contextid": new_context})
            moved[rec.new_id] = new_context
    for instance, category in rc.later.get("question_tags", []):
        if category.new_id in moved:
            rc.writer.update("tag_instance", instance, {"contextid": moved[category.new_id]})


def finish_questions(rc: RestoreContext) -> None:
    """Multianswer sequences: subquestion ids of the restored bank."""
    for rec, sequence in rc.later.get("multianswer", []):
        if rec.new_id is None:
            continue
        rc.writer.update(
            "question_multianswer",
            rec.new_id,
            {
                "sequence": ",".join(
                    str(rc.ids.get("question", old) or 0) for old in sequence.split(",") if old
                )
            },
        )
