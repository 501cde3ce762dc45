"""Element addresses (tree.elements): what ``cat`` takes and ``ls`` prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import CORPUS, corpus_ids

from coursevault import api
from coursevault.errors import BadInputError
from coursevault.store.repository import Repository
from coursevault.tree.elements import Element, Step, parse_address


def test_a_step_takes_any_number_of_predicates() -> None:
    assert parse_address("/activity[@id=1][@moduleid=2]/quiz/x[2][@a='b/c'][@d=\"e]\"]/") == [
        Step("activity", (("id", "1"), ("moduleid", "2"))),
        Step("quiz"),
        Step("x", (("a", "b/c"), ("d", "e]")), 2),
    ]


@pytest.mark.parametrize(
    "address",
    ["activity", "/", "/a//b", "/a[@id=1", "/a[1][2]", "/a[@id=x/y]", "/a b", "/a[@id=1]x"],
)
def test_bad_addresses_are_refused(address: str) -> None:
    with pytest.raises(BadInputError):
        parse_address(address)


@pytest.mark.parametrize(
    "value",
    # both quotes, a line break or a tab: labels ls printed that cat refused
    ["plain", "", "a/b", "x[1]", "it's", 'say "hi"', "both \" and '", "nl\nhere", "tab\there",
     "back\\slash", "a\\b/c", "\\"],
)
def test_labels_read_back_as_steps(value: str) -> None:
    label = Element("option", {"id": "3", "text": value}).label()
    assert "\n" not in label  # one line of ls a record
    assert parse_address("/" + label) == [Step("option", (("id", "3"), ("text", value)))]


@pytest.mark.parametrize("archive", CORPUS, ids=corpus_ids())
def test_every_label_ls_prints_is_an_address_cat_finds(cv_repo: Repository, archive: Path) -> None:
    """In every corpus archive, each record's path of ``ls`` labels finds it
    (the first 40 records of each document, and every record whose label has
    two attributes or more, which cat once refused)."""
    res = api.ingest(cv_repo, str(archive))
    _snap, tree = api.archive_tree(cv_repo, res.snapshot)
    checked = 0
    for member in tree.members:
        if member.content_kind != "xml":
            continue
        path: list[str] = []
        for n, (depth, el, _fields) in enumerate(
            api.element_outline(cv_repo, res.snapshot, member.path)
        ):
            del path[depth:]
            path.append(el.label())
            if n >= 40 and len(el.attrs) < 2:
                continue
            address = "/" + "/".join(path)
            out: list[bytes] = []
            api.cat(cv_repo, res.snapshot, f"{member.path}:{address}", out.append)
            assert out, address
            checked += 1
    assert checked > 0


def test_cat_refuses_a_folder(cv_repo: Repository) -> None:
    archive = next(c for c in CORPUS if "moodle_311_quiz" in c.name)
    res = api.ingest(cv_repo, str(archive))
    for folder in ("activities", "activities/"):
        with pytest.raises(BadInputError, match="is a folder"):
            api.cat(cv_repo, res.snapshot, folder, lambda _b: None)
