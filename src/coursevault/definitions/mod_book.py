"""mod_book (``mod/book/backup/moodle2/backup_book_stepslib.php``, Moodle
4.5): the book, its chapters and the chapters' tags (not user data).

The chapter's field list names ``timemcreated`` (sic): no column has that
name, so Moodle never sets it and never writes it -- and the chapter's real
``timecreated`` is not in the list.  It is left out here for the same
result."""

from __future__ import annotations

from coursevault.definitions.common import activity_structure
from coursevault.definitions.preg import preg_replace, quoted_root
from coursevault.definitions.tags import context_tags
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Table, Up
from coursevault.structure.registry import LinkContext, Plugin, Step


def book_structure(ctx: TaskContext) -> Nested:
    """``backup_book_activity_structure_step::define_structure``."""
    book = Nested(
        "book",
        attrs=("id",),
        fields=("name", "intro", "introformat", "numbering", "navstyle",
                "customtitles", "timecreated", "timemodified"),
        source=Table("book", {"id": Param("activityid")}),
    )
    chapter = Nested(
        "chapter",
        attrs=("id",),
        fields=("pagenum", "subchapter", "title", "content", "contentformat",
                "hidden", "timemodified", "importsrc"),
        source=Table("book_chapters", {"bookid": Up("id")}),
    )
    book.annotate_files("mod_book", "intro", None)
    chapter.annotate_files("mod_book", "chapter", "id")
    book.add(
        Nested("chapters", children=[chapter]),
        context_tags(ctx, "chaptertags", "mod_book", "book_chapters", userinfo=False),
    )
    return activity_structure(ctx, book)


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_book_activity_task::encode_content_links``: chapter links
    first, so that ``view.php?id=N&chapterid=M`` keeps its chapter."""
    base = quoted_root(link)
    rules = (
        (rf"({base}\/mod\/book\/index.php\?id=)([0-9]+)", "$@BOOKINDEX*$2@$"),
        (rf"({base}\/mod\/book\/view.php\?id=)([0-9]+)(&|&amp;)chapterid=([0-9]+)",
         "$@BOOKVIEWBYIDCH*$2*$4@$"),
        (rf"({base}\/mod\/book\/view.php\?id=)([0-9]+)", "$@BOOKVIEWBYID*$2@$"),
        (rf"({base}\/mod\/book\/view.php\?b=)([0-9]+)(&|&amp;)chapterid=([0-9]+)",
         "$@BOOKVIEWBYBCH*$2*$4@$"),
        (rf"({base}\/mod\/book\/view.php\?b=)([0-9]+)", "$@BOOKVIEWBYB*$2@$"),
    )
    for pattern, replacement in rules:
        content = preg_replace(pattern, replacement, content)
    return content


PLUGIN = Plugin(
    "book",
    steps=lambda ctx: [Step("book.xml", build=book_structure)],
    encode_links=encode_links,
)
