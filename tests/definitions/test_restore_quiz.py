"""A random slot's filter restored as Moodle 4.5's restore writes it: the
reference site's pre-4.3 filters (PostgreSQL's mdl_question_set_references,
as the courses' backups hold them) against the rows Moodle's restore of
the same courses left on the MariaDB site, ids aside."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from coursevault.definitions import restore_quiz
from coursevault.moodledb.schema import create_schema, moodle_metadata
from coursevault.moodledb.sitewriter import SiteWriter
from coursevault.structure.restore_engine import IdMap, RestoreContext

# course "test" (quiz 5), "2022/23/2 GTI22..." (quiz 6): PostgreSQL, and MariaDB after Moodle's restore
TEST_LEGACY = (
    '{"questioncategoryid":"17","includingsubcategories":"0",'
    '"tags":["1,first question","2,one","3,number one"]}'
)
TEST_RESTORED = (
    '{"filter":{"category":{"jointype":1,"values":[%d],"filteroptions":'
    '{"includesubcategories":"0"}},"qtagids":{"jointype":2,"values":[%s]}},'
    '"cat":"%d,%d","tabname":"questions","qpage":0,"qperpage":100,"jointype":2}'
)
GTI_LEGACY = '{"questioncategoryid":"19","includingsubcategories":false}'
GTI_RESTORED = (
    '{"filter":{"category":{"jointype":1,"values":[%d],"filteroptions":'
    '{"includesubcategories":false}}},"cat":"%d,%d","tabname":"questions","qpage":0,'
    '"qperpage":100,"jointype":2}'
)


@pytest.fixture
def rc() -> Iterator[RestoreContext]:
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        create_schema(conn, moodle_metadata("mdl_", ("tag",)))
        writer = SiteWriter(conn, "mdl_")
        for name in ("first question", "one"):  # "number one" is not in this site
            writer.insert(
                "tag",
                {
                    "userid": 2,
                    "tagcollid": 1,
                    "name": name,
                    "rawname": name,
                    "isstandard": 0,
                    "descriptionformat": 0,
                    "flag": 0,
                    "timemodified": 1,
                },
            )
        rc = RestoreContext(writer, IdMap(), {"coursecontextid": 500, "now": 5})
        rc.later["contexts"] = [{"211": 611, "212": 612}]
        rc.ids.set("question_categories", "17", 117)
        rc.ids.set("question_categories", "19", 119)
        yield rc
    engine.dispose()


def _restored(rc: RestoreContext, condition: str, context: str) -> dict[str, Any]:
    row: dict[str, Any] = {"questionscontextid": context, "filtercondition": condition}
    assert restore_quiz.HOOKS["question_set_reference"](rc, None, row)  # type: ignore[arg-type]
    return row


def test_a_legacy_filter_is_converted_with_its_category_context_and_tags(
    rc: RestoreContext,
) -> None:
    row = _restored(rc, TEST_LEGACY, "211")
    assert row["questionscontextid"] == 611
    assert row["filtercondition"] == TEST_RESTORED % (117, '"1","2","3"', 117, 611)
    tags = {t["name"]: t for t in rc.writer.rows("tag", {})}
    assert tags["number one"]["rawname"] == "number one" and tags["number one"]["id"] == 3


def test_a_legacy_filter_without_tags_has_no_tag_filter(rc: RestoreContext) -> None:
    row = _restored(rc, GTI_LEGACY, "212")
    assert row["filtercondition"] == GTI_RESTORED % (119, 119, 612)


def test_a_filter_in_the_new_form_has_its_ids_mapped_only(rc: RestoreContext) -> None:
    """What Moodle's restore wrote on the MariaDB site, restored again."""
    row = _restored(rc, GTI_RESTORED % (19, 19, 212), "212")
    assert row["filtercondition"] == GTI_RESTORED % (119, 119, 612)
