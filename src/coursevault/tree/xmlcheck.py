"""libxml2's check of the bytes the cutter scans: well-formed, no DTD.

The cutter (xmltree.py) finds the tags itself and trusts libxml2 for
well-formedness, so a document is cut only if libxml2 accepts the very bytes
it was cut from.  Kept apart from the scanner because it is the one place
lxml is configured for untrusted input: what it refuses and why is reviewed
here, not in the middle of the hot loop.
"""

from __future__ import annotations

import re

from lxml import etree


class XmlSyntax(Exception):
    """Malformed or unsafe XML; the message says what and where (line)."""


class _DoctypeFound(Exception):
    pass


class _NoEvents:
    """A parser target with no event methods: lxml then calls no Python per
    element and builds nothing, so libxml2 only checks the bytes."""

    def doctype(self, *_args: object) -> None:
        raise _DoctypeFound

    def close(self) -> None:
        return None


_LINE_COLUMN = re.compile(r", line \d+, column \d+$")


class Validator:
    """libxml2 (lxml's feed parser) over the same bytes: well-formed, no DTD,
    no undeclared entities.

    A DOCTYPE is refused when it starts, before any entity in it is declared,
    so nothing is ever expanded or fetched (and no DTD or network is loaded
    in any case).  libxml2 with a target that takes no events checks a
    backup's XML in about half expat's time (0.27 against 0.49 s for the
    generated 100 MB course), which was a tenth of an ingest.
    """

    def __init__(self) -> None:
        self._p = etree.XMLParser(
            target=_NoEvents(),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=True,  # long text fields and deep documents are fine here
        )

    @classmethod
    def resumed(cls, prologue: bytes, names: list[bytes], lines: int) -> Validator:
        """A parser that goes on inside the elements ``names`` (root first),
        given the prologue, their start tags and ``lines`` line breaks in all
        in place of the bytes already checked (so its messages count lines
        right)."""
        head = prologue + b"".join(b"<" + name + b">" for name in names)
        valid = cls()
        valid.feed(head + b"\n" * max(0, lines - head.count(b"\n")))
        return valid

    def feed(self, data: bytes, final: bool = False) -> None:
        try:
            if data:
                self._p.feed(data)
            if final:
                self._p.close()
        except _DoctypeFound:
            raise XmlSyntax("XML with a DTD (DOCTYPE) is not accepted") from None
        except etree.XMLSyntaxError as exc:
            # (some of libxml2's messages end in a line break)
            what = _LINE_COLUMN.sub("", (exc.msg or "not well-formed").strip())
            raise XmlSyntax(f"malformed XML at line {exc.lineno}: {what}") from None
