"""Masking what differs between two runs of Moodle's backup, and naming where
a line sits in a member.

A member is compared as bytes after masking (never re-serialised): a writer
must match Moodle's formatting too.  Masked are exactly the run-specific
values the reference site's README lists -- in ``moodle_backup.xml``
``information/name``, ``information/backup_date``,
``information/details/detail/@backup_id`` and the ``filename`` setting's
value; in ``.ARCHIVE_INDEX`` the mtime column of file lines -- and, in any XML
member, the text of an ``encrypted="true"`` element, replaced by a digest of
what it decrypts to (both sides decrypt to the same, or they differ).

The tag scanner is a regular expression over bytes, enough for what Moodle
writes (no DTDs; comments, CDATA and processing instructions are skipped).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from .mbzcrypt import EncryptedValueError, decrypt_value

RUN_SPECIFIC = b"[run-specific]"
_TOKEN = re.compile(
    rb"<(?:!--.*?-->|\?.*?\?>|!\[CDATA\[.*?\]\]>|!DOCTYPE[^>]*>"
    rb"|(?P<end>/)?(?P<name>[^\s/>!?]+)(?P<attrs>[^>]*?)(?P<empty>/)?>)",
    re.S,
)
_ATTR = re.compile(rb'([^\s=]+)\s*=\s*"([^"]*)"')


@dataclass
class _Open:
    """An open element: its name, its label in a path, where its text starts."""

    name: bytes
    label: str
    text_start: int
    attrs: dict[bytes, tuple[int, int, bytes]]  # name -> (start, end, value)
    counts: dict[bytes, int] = field(default_factory=dict)
    setting_name: bytes | None = (
        None  # a child's text a rule remembers (a setting's <name>, a user's <username>)
    )


@dataclass(frozen=True)
class Mask:
    """Bytes data[start:end] are replaced by ``replacement`` before comparing."""

    start: int
    end: int
    replacement: bytes


def _attributes(tag_attrs: bytes, offset: int) -> dict[bytes, tuple[int, int, bytes]]:
    return {
        m.group(1): (offset + m.start(2), offset + m.end(2), m.group(2))
        for m in _ATTR.finditer(tag_attrs)
    }


def _label(name: bytes, attrs: dict[bytes, tuple[int, int, bytes]], nth: int) -> str:
    text = name.decode("utf-8", "replace")
    if b"id" in attrs:
        return f"{text}[@id={attrs[b'id'][2].decode('utf-8', 'replace')}]"
    return f"{text}[{nth}]" if nth > 1 else text


def walk(data: bytes, stop: int | None = None) -> Iterator[tuple[str, list[_Open], int, int]]:
    """Yield ("start"|"end", the open elements, tag start, tag end) for every
    element tag up to offset ``stop``; the list is live (copy to keep it)."""
    stack: list[_Open] = []
    siblings: dict[bytes, int] = {}
    for m in _TOKEN.finditer(data, 0, len(data) if stop is None else stop):
        name = m.group("name")
        if name is None:
            continue
        if m.group("end"):
            yield "end", stack, m.start(), m.end()
            if stack:
                stack.pop()
            continue
        counts = stack[-1].counts if stack else siblings
        counts[name] = counts.get(name, 0) + 1
        attrs = _attributes(m.group("attrs"), m.start("attrs"))
        stack.append(_Open(name, _label(name, attrs, counts[name]), m.end(), attrs))
        yield "start", stack, m.start(), m.end()
        if m.group("empty"):
            yield "end", stack, m.end(), m.end()
            stack.pop()


def path_at(data: bytes, offset: int) -> str:
    """The element path open at ``offset``, e.g.
    ``/activity[@id=5]/forum[@id=5]/discussions/discussion[@id=3]``."""
    stack: list[_Open] = []
    for _kind, open_now, _s, _e in walk(data, offset):
        stack = open_now
    return "/" + "/".join(o.label for o in stack)


def _names(stack: list[_Open]) -> tuple[bytes, ...]:
    return tuple(o.name for o in stack)


def _encrypted_mask(data: bytes, top: _Open, end: int, key: bytes | None) -> Mask:
    text = data[top.text_start : end]
    if key is None:
        return Mask(top.text_start, end, b"[encrypted, no key given: " + text + b"]")
    try:
        plain = decrypt_value(text, key)
    except EncryptedValueError as exc:
        return Mask(
            top.text_start, end, f"[encrypted, undecryptable: {exc}: ".encode() + text + b"]"
        )
    digest = hashlib.sha256(plain).hexdigest()[:16]
    return Mask(top.text_start, end, f"[decrypts to {len(plain)} bytes, sha256 {digest}]".encode())


_INFO = (b"moodle_backup", b"information")
_INFO_NAME = (*_INFO, b"name")
_INFO_DATE = (*_INFO, b"backup_date")
_INFO_DETAIL = (*_INFO, b"details", b"detail")


def _backup_masks(stack: list[_Open], data: bytes, end: int) -> Iterator[Mask]:
    """The masks of moodle_backup.xml, at the end tag of the element on top."""
    names, top = _names(stack), stack[-1]
    if names in (_INFO_NAME, _INFO_DATE):
        yield Mask(top.text_start, end, RUN_SPECIFIC)
    elif names == _INFO_DETAIL and b"backup_id" in top.attrs:
        start, stop, _value = top.attrs[b"backup_id"]
        yield Mask(start, stop, RUN_SPECIFIC)
    elif names[-2:] == (b"setting", b"name") and len(stack) > 1:
        stack[-2].setting_name = data[top.text_start : end]
    elif names[-2:] == (b"setting", b"value") and stack[-2].setting_name == b"filename":
        yield Mask(top.text_start, end, RUN_SPECIFIC)


def _is_encrypted(element: _Open) -> bool:
    return element.attrs.get(b"encrypted", (0, 0, b""))[2] == b"true"


def xml_masks(member: str, data: bytes, key: bytes | None) -> list[Mask]:
    """Every run-specific span of one XML member, in order."""
    is_manifest = member == "moodle_backup.xml"
    if not is_manifest and b'encrypted="true"' not in data:
        return []
    masks: list[Mask] = []
    for kind, stack, start, _end in walk(data):
        if kind != "end" or not stack:
            continue
        top = stack[-1]
        if is_manifest:
            masks.extend(_backup_masks(stack, data, start))
        if _is_encrypted(top) and b"<" not in data[top.text_start : start]:
            masks.append(_encrypted_mask(data, top, start, key))
    return sorted(masks, key=lambda m: m.start)


def apply_masks(data: bytes, masks: list[Mask]) -> bytes:
    out, pos = [], 0
    for mask in masks:
        out += [data[pos : mask.start], mask.replacement]
        pos = mask.end
    out.append(data[pos:])
    return b"".join(out)


def mask_archive_index(data: bytes) -> bytes:
    """``.ARCHIVE_INDEX`` with each file line's mtime column masked (a file
    line is ``path<TAB>f<TAB>size<TAB>mtime``; directories carry ``?``)."""
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        cols = line.split(b"\t")
        if len(cols) == 4 and cols[1] == b"f":
            lines[i] = b"\t".join([*cols[:3], RUN_SPECIFIC])
    return b"\n".join(lines)


def mask_member(member: str, data: bytes, key: bytes | None) -> bytes:
    """The member's bytes with its run-specific parts masked."""
    if member == ".ARCHIVE_INDEX":
        return mask_archive_index(data)
    if member.endswith(".xml"):
        return apply_masks(data, xml_masks(member, data, key))
    return data
