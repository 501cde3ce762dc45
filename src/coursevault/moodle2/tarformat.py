"""Moodle's hand-written ustar headers (lib/filestorage/tgz_packer.php).

Moodle does not use a tar library: it writes one 512-byte ustar header per
entry with fixed fields (mode 644/755, uid/gid 0, 11-digit octal size and
mtime, "6 digits NUL space" checksum, magic ``ustar\\0`` + ``00``) and splits
long paths into ``prefix``.  Knowing the rule lets us store only
(name, kind, size, mtime) per entry and rebuild the header byte for byte; any
header that differs (an archive re-packed by GNU tar) is kept verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass

BLOCK = 512
DIR_MTIME = 1356998400  # what Moodle writes for directories and unknown times
MAX_MEMBER_SIZE = 1 << 36  # 64 GiB: anything larger in a course backup is absurd


class TarHeaderError(Exception):
    """A header block is malformed (translated to ArchiveError by the reader)."""


@dataclass(frozen=True)
class TarHeader:
    name: str  # full path (prefix joined), as stored
    typeflag: bytes
    size: int
    mtime: int
    mode: int
    raw: bytes  # the 512 bytes as read


def _octal(value: int, width: int) -> bytes:
    """``width - 1`` zero-padded octal digits and a NUL, as PHP's sprintf('%0Xo')."""
    digits = f"{value:0{width - 1}o}".encode()
    if len(digits) > width - 1:
        raise TarHeaderError(f"value {value} does not fit a {width}-byte tar field")
    return digits + b"\0"


def split_name(path: bytes) -> tuple[bytes, bytes]:
    """Split a path into (prefix, name) the way tgz_packer does."""
    if len(path) <= 100:
        return b"", path
    parts = path.split(b"/")
    prefix_parts: list[bytes] = []
    while len(b"/".join(parts)) > 100 and len(parts) > 1:
        prefix_parts.append(parts.pop(0))
    name = b"/".join(parts)
    prefix = b"/".join(prefix_parts)
    if len(name) > 100 or len(prefix) > 155:
        raise TarHeaderError(f"path too long for a ustar header: {path!r}")
    return prefix, name


def moodle_header(path: str, is_dir: bool, size: int, mtime: int) -> bytes:
    """The header Moodle would write for this entry."""
    prefix, name = split_name(path.encode("utf-8"))
    h = bytearray(BLOCK)
    h[0 : len(name)] = name
    h[100:108] = b"0000755\0" if is_dir else b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = _octal(0 if is_dir else size, 12)
    h[136:148] = _octal(mtime, 12)
    h[148:156] = b" " * 8
    h[156] = ord("5" if is_dir else "0")
    h[257:265] = b"ustar\x0000"
    h[345 : 345 + len(prefix)] = prefix
    checksum = sum(h)
    h[148:156] = f"{checksum:06o}".encode() + b"\0 "
    return bytes(h)


def _cstr(field: bytes) -> bytes:
    end = field.find(b"\0")
    return field if end < 0 else field[:end]


def _number(field: bytes, what: str) -> int:
    if field and field[0] & 0x80:
        raise TarHeaderError(f"{what} uses base-256 encoding (not written by Moodle)")
    text = _cstr(field).strip(b" \0")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarHeaderError(f"{what} field is not octal: {text!r}") from None


def parse_header(block: bytes) -> TarHeader:
    if len(block) != BLOCK:
        raise TarHeaderError("truncated header")
    stored_sum = _number(block[148:156], "checksum")
    computed = sum(block[:148]) + 8 * 32 + sum(block[156:])
    if stored_sum != computed:
        raise TarHeaderError("header checksum mismatch (not a tar archive or corrupt)")
    magic = block[257:263]
    name = _cstr(block[0:100])
    if magic in (b"ustar\0", b"ustar "):
        prefix = _cstr(block[345:500]) if magic == b"ustar\0" else b""
        if prefix:
            name = prefix + b"/" + name
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        raise TarHeaderError(f"entry name is not UTF-8: {name!r}") from None
    return TarHeader(
        name=text,
        typeflag=block[156:157],
        size=_number(block[124:136], "size"),
        mtime=_number(block[136:148], "mtime"),
        mode=_number(block[100:108], "mode"),
        raw=bytes(block),
    )


def padding(size: int) -> int:
    return (-size) % BLOCK
