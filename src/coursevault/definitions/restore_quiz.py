"""What restoring a quiz adds to the common activity restore
(``restore_quiz_activity_structure_step`` with ``restore_questions_*_trait``).

A slot's question reference names a bank entry (mapped through
questions.xml's restore); a random slot's set reference names a category
inside its JSON filter and a context, both mapped.  An attempt's question
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

from coursevault.structure.restore_engine import Hook, RestoreContext
from coursevault.structure.reverse import Record

REFS: dict[tuple[str, str], str] = {
    ("question_references", "questionbankentryid"): "question_bank_entries",
    ("quiz_slots", "quizgradeitemid"): "quiz_grade_items",
}
# qtype -> step variable -> table whose ids it lists (comma separated)
RECODE: dict[str, dict[str, str]] = {
    "multichoice": {"_order": "question_answers"},
    "match": {"_stemorder": "qtype_match_subquestions",
              "_choiceorder": "qtype_match_subquestions"},
    "randomsamatch": {"_stemorder": "question"},
}


def _set_reference(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
    old_context = str(row.get("questionscontextid") or "")
    contexts: dict[str, int] = rc.later.get("contexts", [{}])[0]
    row["questionscontextid"] = contexts.get(old_context, rc.param("coursecontextid"))
    text = row.get("filtercondition")
    if text:
        row["filtercondition"] = _filter(rc, str(text))
    return True


def _filter(rc: RestoreContext, text: str) -> str:
    try:
        condition = json.loads(text)
    except ValueError:
        rc.warnings.append(f"question set filter {text[:40]!r} is not JSON: kept")
        return text
    if not isinstance(condition, dict):
        return text
    old = condition.get("questioncategoryid")
    if old is not None:
        condition["questioncategoryid"] = rc.ids.get("question_categories", old) or old
    category = condition.get("filter", {}).get("category") if isinstance(
        condition.get("filter"), dict) else None
    if isinstance(category, dict) and isinstance(category.get("values"), list):
        category["values"] = [rc.ids.get("question_categories", v) or v
                              for v in category["values"]]
    cat = condition.get("cat")
    if isinstance(cat, str) and "," in cat:
        catid, _ctx = cat.split(",", 1)
        new = rc.ids.get("question_categories", catid)
        if new is not None:
            condition["cat"] = f"{new},{rc.param('coursecontextid')}"
    return json.dumps(condition, separators=(",", ":"))


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
        str(row.get("name")))
    if table is not None and row.get("value"):
        row["value"] = ",".join(str(rc.ids.get(table, v) or v)
                                for v in str(row["value"]).split(","))
    return True


HOOKS: dict[str, Hook] = {
    "question_set_reference": _set_reference, "attempt": _attempt,
    "question_usage": _usage, "variable": _variable,
}
