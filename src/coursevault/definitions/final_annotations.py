"""What the final task reads back from Moodle's ``backup_ids_temp``.

Every task ends with ``move_inforef_annotations_to_final``: its ``user``,
``role``, ``file``... annotations become ``userfinal``, ``rolefinal``,
``filefinal``.  Some steps annotate straight as final (``scalefinal`` from an
activity's grades.xml, ``userfinal`` from groups.xml and gradebook.xml), and
the final task's own plain annotations only become final at its
``migrate_inforef`` step, just before files.xml: users.xml, written earlier,
never sees the users badges.xml annotates.  :func:`final_ids` gives the
final set as one step of the final task sees it, in the order Moodle reads
it back: the tasks' annotation sequences (``run.memo["annotations"]``,
recorded as each task finishes) replayed on a model of the temp table
(definitions/final_temptable.py), then the final task's own as its steps
make them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coursevault.definitions.final_temptable import TempTableModel
from coursevault.moodledb.site import Row
from coursevault.structure.context import TaskContext

# backup_helper::get_inforef_itemnames(): what the migrate steps move
INFOREF_ITEMS = ("user", "grouping", "group", "role", "file", "scale", "outcome",
                 "grade_item", "question_category")


@dataclass
class _Replay:
    table: TempTableModel
    done: int = 0  # how much of the final task's own sequence is in the table
    migrated: bool = False


def _replay(ctx: TaskContext) -> _Replay:
    memo = ctx.run.memo
    replay = memo.get("final_temptable")
    if not isinstance(replay, _Replay):
        table = TempTableModel()
        for sequence in memo.get("annotations") or [ctx.run.final.order]:
            table.insert_all(sequence)
            table.move_to_final(INFOREF_ITEMS)
        replay = memo["final_temptable"] = _Replay(table)
    table = replay.table
    table.insert_all(ctx.ids.order[replay.done:])
    replay.done = len(ctx.ids.order)
    return replay


def final_ids(ctx: TaskContext, item: str, *, migrated: bool = False) -> list[str]:
    """``<item>final`` ids at this point of the final task, in Moodle's order;
    ``migrated``: after its ``move_inforef_annotations_to_final`` step."""
    replay = _replay(ctx)
    if migrated and not replay.migrated:
        replay.table.move_to_final(INFOREF_ITEMS)
        replay.migrated = True
    return replay.table.read(item + "final")


def rows_by_ids(ctx: TaskContext, sql: str, ids: Sequence[str], key: str = "id") -> list[Row]:
    """Rows of ``sql`` (ending in ``WHERE <col> IN``, completed here) for
    ``ids``, in the order of ``ids``: Moodle joins the temp table, which
    hands the rows back in annotation order."""
    found: dict[str, Row] = {}
    for start in range(0, len(ids), 500):
        # one list parameter, one expanding bind: a "?" per id made 500
        # bound parameters SQLAlchemy cloned and its statement cache kept
        # (about 1.5 MiB a statement text, 6 MiB at a 4,000-user users.xml)
        for row in ctx.reader.sql(f"{sql} (?)", [list(ids[start:start + 500])]):
            found[str(row[key])] = row
    return [found[i] for i in ids if i in found]


def system_context_id(ctx: TaskContext) -> str:
    """``context_system::instance()->id``, read once per run."""
    memo = ctx.run.memo
    if "systemcontextid" not in memo:
        row = ctx.reader.one("context", {"contextlevel": 10})
        memo["systemcontextid"] = "1" if row is None else str(row["id"])
    return str(memo["systemcontextid"])
