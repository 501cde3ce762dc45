"""The link encoders of page, resource, url, folder, imscp, book and glossary.

No course of the reference site links to these modules, so the backups
cannot check the encoders; these cases pin what PHP's ``preg_replace`` does
with each task's patterns as Moodle writes them, quirks included (the
unescaped dot of ``index.php``, PHP's str_replace of mod_resource's
migrated links)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from coursevault.definitions import (
    mod_book,
    mod_folder,
    mod_glossary,
    mod_imscp,
    mod_page,
    mod_resource,
    mod_url,
)
from coursevault.definitions.preg import preg_replace
from coursevault.structure.registry import LinkContext

ROOT = "http://example.org/moodle"
LINK = LinkContext(ROOT, "7")


@pytest.mark.parametrize(
    ("module", "name", "index", "view"),
    [
        (mod_page, "page", "PAGEINDEX", "PAGEVIEWBYID"),
        (mod_folder, "folder", "FOLDERINDEX", "FOLDERVIEWBYID"),
        (mod_imscp, "imscp", "IMSCPINDEX", "IMSCPVIEWBYID"),
        (mod_glossary, "glossary", "GLOSSARYINDEX", "GLOSSARYVIEWBYID"),
        (mod_resource, "resource", "RESOURCEINDEX", "RESOURCEVIEWBYID"),
        (mod_book, "book", "BOOKINDEX", "BOOKVIEWBYID"),
    ],
)
def test_index_and_view_links_become_markers(
    module: Any, name: str, index: str, view: str
) -> None:
    text = f'<a href="{ROOT}/mod/{name}/index.php?id=7">all</a> {ROOT}/mod/{name}/view.php?id=42'
    assert module.encode_links(text, LINK) == f'<a href="$@{index}*7@$">all</a> $@{view}*42@$'


def test_the_unescaped_dot_matches_any_character_as_in_php() -> None:
    text = f"{ROOT}/mod/page/viewXphp?id=3 {ROOT}/mod/url/viewXphp?id=3"
    assert mod_page.encode_links(text, LINK) == f"$@PAGEVIEWBYID*3@$ {ROOT}/mod/url/viewXphp?id=3"
    assert mod_url.encode_links(text, LINK) == text  # mod_url escapes its dots


def test_other_sites_and_other_modules_are_left_alone() -> None:
    text = "http://elsewhere.org/mod/page/view.php?id=3 " f"{ROOT}/mod/forum/view.php?id=3"
    for module in (mod_page, mod_folder, mod_imscp, mod_glossary, mod_resource, mod_book, mod_url):
        assert module.encode_links(text, LINK) == text


def test_url_links_by_module_and_by_instance() -> None:
    text = f"{ROOT}/mod/url/index.php?id=7 {ROOT}/mod/url/view.php?id=9 {ROOT}/mod/url/view.php?u=4"
    assert mod_url.encode_links(text, LINK) == "$@URLINDEX*7@$ $@URLVIEWBYID*9@$ $@URLVIEWBYU*4@$"


def test_book_chapter_links_keep_their_chapter() -> None:
    text = (f"{ROOT}/mod/book/view.php?id=5&amp;chapterid=8 {ROOT}/mod/book/view.php?id=5&chapterid=9"
            f" {ROOT}/mod/book/view.php?b=2&amp;chapterid=3 {ROOT}/mod/book/view.php?b=2")
    assert mod_book.encode_links(text, LINK) == (
        "$@BOOKVIEWBYIDCH*5*8@$ $@BOOKVIEWBYIDCH*5*9@$ $@BOOKVIEWBYBCH*2*3@$ $@BOOKVIEWBYB*2@$")


def test_preg_replace_substitutes_as_php_does() -> None:
    assert preg_replace(r"(a)(b)?", "[$1|$2|${1}|\\1|$3]", "ac") == "[a||a|a|]c"
    assert preg_replace(r"x", "$@NULL@$", "x") == "$@NULL@$"


_RESOURCE_OLD = (
    {"oldid": "5", "cmid": "12", "newmodule": "url"},
    {"oldid": "6", "cmid": "13", "newmodule": "page"},
)


class _ResourceOld:
    """A site whose resource_old maps two resources Moodle 2.0 migrated."""

    def sql(self, _sql: str, _params: Any = ()) -> Iterator[dict[str, str]]:
        yield {"id": "1"}

    def rows(self, table: str, where: Mapping[str, Any]) -> Iterator[dict[str, str]]:
        assert table == "resource_old"
        ((key, values),) = where.items()
        return (r for r in _RESOURCE_OLD if r[key] in [str(v) for v in values])


class _Run:
    def __init__(self) -> None:
        self.reader = _ResourceOld()
        self.memo: dict[str, Any] = {}


def test_links_to_migrated_resources_name_their_new_module() -> None:
    link = LinkContext(ROOT, "7", _Run())  # type: ignore[arg-type]
    text = (f"{ROOT}/mod/resource/view.php?id=12 {ROOT}/mod/resource/view.php?id=14 "
            f"{ROOT}/mod/resource/view.php?r=6 {ROOT}/mod/resource/view.php?r=99")
    assert mod_resource.encode_links(text, link) == (
        f"$@URLVIEWBYID*12@$ $@RESOURCEVIEWBYID*14@$ $@PAGEVIEWBYID*13@$ "
        f"{ROOT}/mod/resource/view.php?r=99")


def test_php_str_replace_also_rewrites_longer_links_that_start_alike() -> None:
    link = LinkContext(ROOT, "7", _Run())  # type: ignore[arg-type]
    text = f"{ROOT}/mod/resource/view.php?id=12 {ROOT}/mod/resource/view.php?id=123"
    assert mod_resource.encode_links(text, link) == "$@URLVIEWBYID*12@$ $@URLVIEWBYID*12@$3"
