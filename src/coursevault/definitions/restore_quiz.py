"""What restoring a quiz adds to the common activity restore
(``restore_quiz_activity_structure_step`` with ``restore_questions_*_trait``).

A slot's question reference names a bank entry (mapped through
questions.xml's restore); a random slot's set reference names a category
inside its JSON filter and a context, both mapped, the filter written in
the 4.3 form (a pre-4.3 one converted, its tags by name).  An attempt's question
usage lives in the quiz's new context; the attempt names it by
``uniqueid``, set once the usage exists (a placeholder first, negative so
it can never be a real usage's).  Step data that hold ids of the bank --
a multiple-choice attempt's order of answers, a matching question's order
of stems and choices -- are rewritten as each type's ``recode_response``
does; other types' data hold no ids.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from coursevault.definitions.restore_common import find_or_create_tag
from coursevault.structure.restore_engine import Hook, RestoreContext
from coursevault.structure.reverse import Record

REFS: dict[tuple[str, str], str] = {
    ("question_references", "questionbankentryid"): "question_bank_entries",
    ("quiz_slots", "quizgradeitemid"): "quiz_grade_items",
}
# qtype -> step variable -> table whose ids it lists (comma separated)
RECODE: dict[str, dict[str, str]] = {
    "multichoice": {"_order": "question_answers"},
    "match": {"_stemorder": "qtype_match_subquestions", "_choiceorder": "qtype_match_subquestions"},
    "randomsamatch": {"_stemorder": "question"},
}
# the collection a legacy filter's tags are looked up in (``create_if_missing(1, ...)``)
LEGACY_TAG_COLLECTION = 1


def _set_reference(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
    old_context = str(row.get("questionscontextid") or "")
    contexts: dict[str, int] = rc.later.get("contexts", [{}])[0]
    row["questionscontextid"] = contexts.get(old_context, rc.param("coursecontextid"))
    text = row.get("filtercondition")
    if text:
        row["filtercondition"] = _filter(rc, str(text), int(row["questionscontextid"]))
    return True


def _filter(rc: RestoreContext, text: str, questionscontextid: int) -> str:
    """A set reference's filter in the 4.3+ shape, its category mapped and
    ``cat`` naming it and the questions' new context, as
    ``process_question_set_reference`` writes it; a legacy filter converted
    first (:func:`_converted_legacy_filter`)."""
    try:
        condition = json.loads(text)
    except ValueError:
        rc.warnings.append(f"question set filter {text[:40]!r} is not JSON: kept")
        return text
    if not isinstance(condition, dict):
        return text
    if "filter" not in condition:
        condition = _converted_legacy_filter(rc, condition)
    filters = condition.get("filter")
    category = filters.get("category") if isinstance(filters, dict) else None
    if isinstance(category, dict) and isinstance(category.get("values"), list):
        category["values"] = [rc.ids.get("question_categories", v) or v for v in category["values"]]
        if category["values"]:
            condition["cat"] = f"{category['values'][0]},{questionscontextid}"
    # json_encode's defaults: non-ASCII as \u escapes, "/" escaped
    return json.dumps(condition, separators=(",", ":")).replace("/", "\\/")


def _converted_legacy_filter(rc: RestoreContext, old: dict[str, Any]) -> dict[str, Any]:
    """``question_reference_manager::convert_legacy_set_reference_filter_condition``:
    a pre-4.3 filter (``questioncategoryid``, ``includingsubcategories``,
    ``tags`` as "id,name") as a category filter and a tag filter, the tags
    found by name in the default collection or created (their ids are this
    site's, as text, as Moodle's restore left them in the MariaDB site's
    mdl_question_set_references), then the question bank's view settings.
    Other keys keep their place before the new ones."""
    condition = {
        k: v
        for k, v in old.items()
        if k not in ("questioncategoryid", "includingsubcategories", "tags")
    }
    filters: dict[str, Any] = {}
    if old.get("questioncategoryid") is not None:
        filters["category"] = {
            "jointype": 1,
            "values": [old["questioncategoryid"]],
            "filteroptions": {"includesubcategories": old.get("includingsubcategories")},
        }
    if isinstance(old.get("tags"), list):
        names = [str(t).split(",")[1] for t in old["tags"] if "," in str(t)]
        filters["qtagids"] = {
            "jointype": 2,
            "values": [str(find_or_create_tag(rc, LEGACY_TAG_COLLECTION, name)) for name in names],
        }
    condition["filter"] = filters or []  # PHP encodes an empty array as a list
    if "category" in filters:
        condition["cat"] = ""  # the mapped category's, set in this place
    condition.update(tabname="questions", qpage=0, qperpage=100, jointype=2)
    return condition


def _quiz(_rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
    """A quiz of a backup before Moodle 4.3, which split "max marks" out of
    "marks" in the review options: its ``reviewmaxmarks`` is its
    ``reviewmarks``, as Moodle's restore and 4.3's upgrade make it (Moodle's
    restore of the corpus's 4.2 crossword quizzes: 69904, their reviewmarks;
    the column's default, 0, would hide every quiz's maximum mark)."""
    if rec.values.get("reviewmaxmarks") is None and rec.values.get("reviewmarks") is not None:
        row["reviewmaxmarks"] = row.get("reviewmarks", rec.values["reviewmarks"])
    return True


def _attempt(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
    row["uniqueid"] = -(secrets.randbits(62) + 1)  # the usage's id, once it has one
    if row.get("timecheckstate") is None:
        # Moodle's restore leaves 0 ("no check due"): rich's 3 attempts on MariaDB
        row["timecheckstate"] = 0
    return bool(row.get("userid"))


def _usage(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
    row["contextid"] = rc.param("contextid")
    return True


def _variable(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
    try:
        attempt = rec.up("id", "question_attempt")
    except KeyError:
        return True
    qtypes: dict[str, str] = rc.later.get("qtypes", [{}])[0]
    table = RECODE.get(qtypes.get(str(attempt.values.get("questionid")), ""), {}).get(
        str(row.get("name"))
    )
    if table is not None and row.get("value"):
        row["value"] = ",".join(
            str(rc.ids.get(table, v) or v) for v in str(row["value"]).split(",")
        )
    return True


HOOKS: dict[str, Hook] = {
    "quiz": _quiz,
    "question_set_reference": _set_reference,
    "attempt": _attempt,
    "question_usage": _usage,
    "variable": _variable,
}
