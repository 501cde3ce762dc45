"""Moodle's backup XML writer, byte for byte.

Moodle writes every backup member through one ``xml_writer`` with one
content transformer (``backup/util/xml/xml_writer.class.php``,
``backup/moodle2/backup_xml_transformer.class.php``).  A database backup is
only identical to Moodle's if its bytes come out of the same rules, so they
live here, once:

- prologue ``<?xml version="1.0" encoding="UTF-8"?>`` and a newline, then
  each tag on its own line, indented two spaces a level; an element that
  holds only elements closes on its own line, one that holds text closes
  right after it;
- a null value is the text ``$@NULL@$``; an empty string stays empty;
- text has ``& < >`` escaped, attributes ``& < > "`` too; control characters
  XML 1.0 forbids are dropped and CR LF / CR become LF (``xml_safe_utf8``);
- text of 32 characters or more passes the link encoders (absolute URLs
  into the course become ``$@FORUMVIEWBYID*12@$`` markers: moodle2/links.py).

The writer knows nothing of databases or storage: it is handed strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

NULL = "$@NULL@$"
PROLOGUE = '<?xml version="1.0" encoding="UTF-8"?>\n'

_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NEWLINES = re.compile("\r\n|\r")
# anything escape_text would change: most values (ids, numbers, names) hold none
_TO_ESCAPE = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

Transformer = Callable[[str], str]

# Parts joined and encoded once this many wait: a member of 1 MB is about
# 100,000 small strings (a tag and its text each), 6 MB held as str objects
# until getvalue, where its bytes take 1 MB (docs/benchmarks.md, section 9).
PARTS_PER_CHUNK = 4096


def safe_utf8(text: str) -> str:
    """Drop the control characters XML 1.0 forbids and normalise newlines."""
    if _FORBIDDEN.search(text):
        text = _FORBIDDEN.sub("", text)
    if "\r" in text:
        text = _NEWLINES.sub("\n", text)
    return text


def escape_text(text: str) -> str:
    """``htmlspecialchars(ENT_NOQUOTES)`` of the cleaned text."""
    if _TO_ESCAPE.search(text) is None:
        return text
    return safe_utf8(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attr(text: str | None) -> str:
    """``htmlspecialchars(ENT_COMPAT)``: text escapes plus the double quote.

    Attributes do not pass the content transformer: a null attribute is
    written empty, as PHP's htmlspecialchars(null) gives.
    """
    return escape_text("" if text is None else text).replace('"', "&quot;")


def _final_elements(
    append: Callable[[str], None], pre: str, tags: Iterable[str], get: Callable[[str], Any],
    skip: object, transform: Transformer | None,
) -> None:
    """``<tag>text</tag>`` for each tag, each on a line starting ``pre``
    (XmlWriter.values says how values are written)."""
    search = _TO_ESCAPE.search
    for tag in tags:
        value = get(tag)
        if value is None:
            append(f"{pre}<{tag}>{NULL}</{tag}>")
            continue
        if value.__class__ is not str:
            if value is skip:
                continue
            value = str(value)
        if transform is not None and len(value) >= 32:
            value = transform(value)
        append(f"{pre}<{tag}>{value if search(value) is None else escape_text(value)}</{tag}>")


class XmlWriter:
    """Builds one member's bytes with Moodle's layout rules.

    ``transform`` is the content transformer applied to text values of 32
    characters or more (shorter ones cannot hold a link: Moodle's shortcut).
    ``sink``, if given, is handed each chunk as it is joined, and
    :meth:`close` ends the member: its bytes are never all in memory, nor
    joined at the end (twice the member's size: users.xml of 1,000 users
    is 1.6 MB).  Without one, :meth:`getvalue` gives them.
    """

    def __init__(
        self, transform: Transformer | None = None, sink: Callable[[bytes], object] | None = None
    ) -> None:
        self._parts: list[str] = [PROLOGUE]
        self._chunks: list[bytes] = []  # parts already joined and encoded (without a sink)
        self._sink = sink
        self._written = 0  # bytes handed to the sink
        self._level = 0
        self._open: list[str] = []
        self._last_was_text = False
        self._transform = transform

    def begin(self, tag: str, attrs: Mapping[str, str | None] | None = None) -> None:
        pre = "\n" + "  " * self._level if self._level else ""
        attr = "".join(f' {k}="{escape_attr(v)}"' for k, v in attrs.items()) if attrs else ""
        self._parts.append(f"{pre}<{tag}{attr}>")
        self._open.append(tag)
        self._level += 1
        self._last_was_text = False

    def end(self, tag: str) -> None:
        opened = self._open.pop()
        if opened != tag:
            raise ValueError(f"end tag {tag!r} closes {opened!r}")
        pre = "" if self._last_was_text else "\n" + "  " * (self._level - 1)
        self._parts.append(f"{pre}</{tag}>")
        self._level -= 1
        self._last_was_text = False
        if len(self._parts) >= PARTS_PER_CHUNK:
            self._flush()

    def full(self, tag: str, value: str | None, attrs: Mapping[str, str | None] | None = None) -> None:
        """An element holding one value (a final element, in Moodle's words)."""
        self.begin(tag, attrs)
        self._parts.append(self.text(value))
        self._last_was_text = True
        self.end(tag)

    def values(self, tags: Iterable[str], get: Callable[[str], Any], skip: object) -> None:
        """Final elements named ``tags``, each holding ``get(tag)``, written
        as :meth:`full` writes one without attributes: a value that is not a string is
        written as its ``str``, None as the null marker, and one that is
        ``skip`` writes no element at all.  The engine writes every row of a
        member through here: one call a row, the values never gathered."""
        _final_elements(self._parts.append, "\n" + "  " * self._level, tags, get, skip,
                        self._transform)
        self._last_was_text = False

    def record(self, tag: str, tags: Iterable[str], get: Callable[[str], Any],
               skip: object) -> None:
        """``begin(tag)``, ``values(tags, get, skip)``, ``end(tag)`` in one
        call: an element without attributes holding only final elements,
        as most of a member's rows are."""
        level = self._level
        parts = self._parts
        close = "\n" + "  " * level
        parts.append(f"{close}<{tag}>" if level else f"<{tag}>")
        _final_elements(parts.append, close + "  ", tags, get, skip, self._transform)
        parts.append(f"{close}</{tag}>")
        self._last_was_text = False
        if len(parts) >= PARTS_PER_CHUNK:
            self._flush()

    def _flush(self) -> None:
        """The waiting parts, joined and encoded (PARTS_PER_CHUNK says why)."""
        chunk = "".join(self._parts).encode("utf-8")
        self._parts = []
        if self._sink is None:
            self._chunks.append(chunk)
        elif chunk:
            self._sink(chunk)
            self._written += len(chunk)

    def text(self, value: str | None) -> str:
        if value is None:
            return NULL
        if len(value) >= 32 and self._transform is not None:
            value = self._transform(value)
        return escape_text(value)

    def getvalue(self) -> bytes:
        if self._sink is not None:
            raise ValueError("the member went to the writer's sink: close() ends it")
        self._check_closed()
        self._flush()
        data = b"".join(self._chunks)
        self._chunks = [data]  # a second call gives the same bytes
        return data

    def close(self) -> int:
        """End a member written to the sink: the last chunk handed on, and
        the member's length in bytes."""
        if self._sink is None:
            raise ValueError("no sink: getvalue() gives the member")
        self._check_closed()
        self._flush()
        return self._written

    def _check_closed(self) -> None:
        if self._open:
            raise ValueError(f"elements left open: {'/'.join(self._open)}")
