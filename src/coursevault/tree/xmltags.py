"""Finding tags in a document's bytes: the patterns the cutter's scanner
matches, and the rare shapes it steps over.

The scanner (xmltree.py) finds tags with ``bytes.find`` and these regular
expressions, each taking a whole stretch of markup in one C call; libxml2
(xmlcheck.py) judges well-formedness on the same bytes.  What the patterns
cannot follow exactly is not guessed at: :class:`NotCanonical` says why,
and the caller keeps the document's raw bytes (exact all the same).
"""

from __future__ import annotations

import re

from coursevault.tree.xmlcheck import XmlSyntax

# Bytes before the root element (or after it) that a document may have and
# still be cut: the scanner holds them.
MAX_PROLOGUE = 1 << 20

# A stretch of leaf elements without attributes, ``<name>text</name>``, blanks
# between them: the fields that make up most of a Moodle backup.
LEAVES = re.compile(rb"(?:[ \t\r\n]*<([A-Za-z_][\w.\-]*)>[^<]*</\1>)+")
# An element's start tag (double-quoted attributes only), the stretch of
# fields after it, and its end tag if that comes next.  Most records of a
# backup are fields only (a post, a grade, a log line): then one match stands
# for the general path's steps per tag.  A record with nested records (a post
# with ratings) is at least not scanned twice: its start tag and fields are
# taken from the match.  Anything else (a comment, an odd attribute, a record
# cut by the end of the data) goes the general way, which cuts the same.
RECORD = re.compile(
    rb'(<([A-Za-z_][\w.\-]*+)(?:[ \t\r\n]++[A-Za-z_][\w.\-]*+="[^"<>]*+")*+>)'
    rb"((?:[ \t\r\n]*+<([A-Za-z_][\w.\-]*+)>[^<]*+</\4>)*+)"
    rb"(?:[ \t\r\n]*+(</\2>))?"
)
# The end of a start tag whose attribute values may hold '>' (only used when a
# tag has quotes in it; well-formedness is libxml2's job, not this pattern's).
START_TAG_END = re.compile(rb"""<[^\s/>]+(?:\s+[^\s=]+\s*=\s*(?:"[^"]*"|'[^']*'))*\s*/?>""")


class NotCanonical(Exception):
    """The document cannot be element-chunked exactly; keep its raw bytes."""


def markup_end(buf: bytes, lt: int) -> int:
    """The end of the comment, CDATA section or processing instruction at
    ``lt`` (a DOCTYPE raises: the validator has refused it already), or -1
    if it has not all arrived."""
    if buf.startswith(b"<!--", lt):
        close = b"-->"
    elif buf.startswith(b"<![CDATA[", lt):
        close = b"]]>"
    elif buf[lt + 1] == 0x3F:
        close = b"?>"
    elif len(buf) - lt < 9:
        return -1
    else:
        raise XmlSyntax("XML with a DTD (DOCTYPE) is not accepted")
    stop = buf.find(close, lt + 2)
    return -1 if stop < 0 else stop + len(close)


def quoted_tag_end(buf: bytes, lt: int, base: int) -> int:
    """Where the start tag at ``lt``, with quotes in it, ends (its '>'), or -1
    if it has not fully arrived: a quoted '>' may come before its end.
    ``base`` is ``buf``'s offset in the document, for the message."""
    m = START_TAG_END.match(buf, lt)
    if m is None:
        # a quoted '>' whose tag has not fully arrived (or a shape the
        # pattern does not know: then give up rather than buffer on)
        if len(buf) - lt > MAX_PROLOGUE:
            raise NotCanonical(f"the chunker could not follow the markup at byte {lt + base}")
        return -1
    return m.end() - 1
