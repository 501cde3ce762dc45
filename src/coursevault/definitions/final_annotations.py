"""What the final task reads back from Moodle's ``backup_ids_temp``.

Every task ends with ``move_inforef_annotations_to_final``: its ``user``,
``role``, ``file``... annotations become ``userfinal``, ``rolefinal``,
``filefinal`` (structure/context.py moves them to ``run.final`` under the
plain name).  Some steps annotate straight as final (``scalefinal`` from an
activity's grades.xml, ``userfinal`` from groups.xml and gradebook.xml), and
the final task's own plain annotations only become final at its
``migrate_inforef`` step, just before files.xml: users.xml, written earlier,
never sees the users badges.xml annotates.  :func:`final_ids` gives the
final set as one step of the final task sees it.

Order is first-annotation order, which is the order Moodle's temp table is
read back in for a fresh backup (insertions, then the updates of the moves,
appended).
"""

from __future__ import annotations

from collections.abc import Sequence

from coursevault.moodledb.site import Row
from coursevault.structure.context import TaskContext

# backup_helper::get_inforef_itemnames(): what the migrate step moves
INFOREF_ITEMS = ("user", "grouping", "group", "role", "file", "scale", "outcome",
                 "grade_item", "question_category")


def final_ids(ctx: TaskContext, item: str, *, migrated: bool = False) -> list[str]:
    """``<item>final`` ids at this point of the final task; ``migrated``:
    after its ``move_inforef_annotations_to_final`` step."""
    found: dict[str, None] = {}
    for source in (ctx.run.final.get(item), ctx.run.final.get(item + "final"),
                   ctx.ids.get(item + "final"), ctx.ids.get(item) if migrated else []):
        found.update(dict.fromkeys(source))
    return list(found)


def rows_by_ids(ctx: TaskContext, sql: str, ids: Sequence[str], key: str = "id") -> list[Row]:
    """Rows of ``sql`` (ending in ``WHERE <col> IN``, completed here) for
    ``ids``, in the order of ``ids``: Moodle joins the temp table, which
    hands the rows back in annotation order."""
    found: dict[str, Row] = {}
    for start in range(0, len(ids), 500):
        batch = ids[start:start + 500]
        marks = ", ".join("?" for _ in batch)
        for row in ctx.reader.sql(f"{sql} ({marks})", list(batch)):
            found[str(row[key])] = row
    return [found[i] for i in ids if i in found]


def system_context_id(ctx: TaskContext) -> str:
    """``context_system::instance()->id``, read once per run."""
    memo = ctx.run.memo
    if "systemcontextid" not in memo:
        row = ctx.reader.one("context", {"contextlevel": 10})
        memo["systemcontextid"] = "1" if row is None else str(row["id"])
    return str(memo["systemcontextid"])
