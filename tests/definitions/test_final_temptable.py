"""The temp-table model against what Moodle wrote for gen_s (course 2 of the
reference site), without a database: the course task annotates the manual
enrolment's role, its 101 users (admin last), then the editing teacher role;
Moodle's users.xml and roles.xml list them in the order below."""

from __future__ import annotations

from coursevault.definitions.final_annotations import INFOREF_ITEMS
from coursevault.definitions.final_temptable import GONE, TempTableModel, row_size

STAYED = [4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 19, 20, 21, 22, 23, 24, 25, 27, 28, 29, 30,
          31, 32, 33, 34, 36, 37, 38, 39, 40, 41, 42, 44, 45, 46, 47, 48, 49, 50, 52, 53, 54, 55,
          56, 57, 58, 59, 61, 62, 63, 64, 65, 66, 67, 69, 70, 71, 72, 73, 74, 75, 77, 78, 79, 80,
          81, 82, 83, 84, 86, 87, 88, 89]
MOVED = [2, 3, 10, 18, 26, 35, 43, 51, 60, 68, 76, 85]  # new versions on the next page
GEN_S_USERS = [*STAYED, *MOVED, *range(90, 103)]


def test_row_sizes_are_postgresql_tuple_sizes() -> None:
    assert row_size("user") == 88
    assert row_size("userfinal") == 96
    assert row_size("question_categoryfinal") == 104


def test_gen_s_course_task_order() -> None:
    table = TempTableModel()
    table.insert_all([("role", "5")] + [("user", str(u)) for u in [*range(3, 103), 2]]
                     + [("role", "3")])
    table.move_to_final(INFOREF_ITEMS)
    assert table.read("userfinal") == [str(u) for u in GEN_S_USERS]
    assert table.read("rolefinal") == ["5", "3"]
    assert table.read("user") == []


def test_small_tasks_by_id_within_a_task_tasks_in_order() -> None:
    table = TempTableModel()
    for task in (["7", "3"], ["3", "9"], ["1"]):
        table.insert_all(("file", f) for f in task)
        table.move_to_final(INFOREF_ITEMS)
    assert table.read("filefinal") == ["3", "7", "9", "1"]


def test_pruned_versions_keep_no_row_of_their_own() -> None:
    """An M course's final task replays 127,000 rows, half of them versions
    pruned away: those must not each stay a row object (memory grows with
    the course's annotations otherwise), and the order must not change."""
    table = TempTableModel()
    table.insert_all([("role", "5")] + [("user", str(u)) for u in [*range(3, 103), 2]]
                     + [("role", "3")])
    table.move_to_final(INFOREF_ITEMS)
    gone = [row for page in table.pages for row in page.rows if row.state == GONE]
    assert len(gone) > 50  # the 103 first versions, pruned as pages filled
    assert len({id(row) for row in gone}) == 1
    assert table.read("userfinal") == [str(u) for u in GEN_S_USERS]
