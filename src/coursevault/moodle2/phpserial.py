"""PHP's ``serialize()`` / ``unserialize()``, byte for byte.

Moodle keeps a block's settings as ``base64(serialize(stdClass))`` in
``block_instances.configdata``, and its backup of a block whose task lists
attributes to encode (``get_configdata_encoded_attributes``, block_html's
``text``) unserializes that, passes the attributes through the link encoders
and serializes it again.  For the result to be byte-identical to Moodle's,
the round trip has to keep what PHP keeps: integer vs string keys, ints vs
floats vs numeric strings, and string lengths in bytes.

Values map to Python as: ``N`` None, ``b`` bool, ``i`` int, ``d`` float,
``s`` bytes (PHP strings are bytes; lengths count bytes), ``a``
:class:`PhpArray`, ``O`` :class:`PhpObject`.  Keys are int or bytes.
Anything else (references, custom serialisation) raises ``ValueError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class PhpArray:
    """An ordered PHP array: pairs in insertion order."""

    items: list[tuple[PhpKey, PhpValue]] = field(default_factory=list)


@dataclass
class PhpObject:
    """An object of class ``name`` with its properties in order."""

    name: bytes
    items: list[tuple[PhpKey, PhpValue]] = field(default_factory=list)


PhpKey = int | bytes
PhpValue = None | bool | int | float | bytes | PhpArray | PhpObject


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def until(self, stop: bytes) -> bytes:
        end = self.data.index(stop, self.pos)
        chunk = self.data[self.pos:end]
        self.pos = end + len(stop)
        return chunk

    def expect(self, text: bytes) -> None:
        if self.data[self.pos:self.pos + len(text)] != text:
            raise ValueError(f"serialized PHP: expected {text!r} at {self.pos}")
        self.pos += len(text)

    def value(self) -> PhpValue:
        kind = self.data[self.pos:self.pos + 2]
        self.pos += 2
        if kind == b"N;":
            return None
        if kind == b"b:":
            return self.until(b";") == b"1"
        if kind == b"i:":
            return int(self.until(b";"))
        if kind == b"d:":
            return float(self.until(b";").replace(b"INF", b"inf").replace(b"NAN", b"nan"))
        if kind == b"s:":
            return self.string()
        if kind == b"a:":
            return PhpArray(self.pairs())
        if kind == b"O:":
            name = self.string(b":")
            return PhpObject(name, self.pairs())
        raise ValueError(f"serialized PHP: unsupported type {kind!r} at {self.pos - 2}")

    def string(self, end: bytes = b";") -> bytes:
        size = int(self.until(b":"))
        self.expect(b'"')
        text = self.data[self.pos:self.pos + size]
        self.pos += size
        self.expect(b'"' + end)
        return text

    def pairs(self) -> list[tuple[PhpKey, PhpValue]]:
        count = int(self.until(b":"))
        self.expect(b"{")
        items: list[tuple[PhpKey, PhpValue]] = []
        for _ in range(count):
            key = self.value()
            if not isinstance(key, (int, bytes)) or isinstance(key, bool):
                raise ValueError("serialized PHP: array key is not an int or a string")
            items.append((key, self.value()))
        self.expect(b"}")
        return items


def unserialize(data: bytes) -> PhpValue:
    """The value ``data`` holds; ``ValueError`` if it is not whole and valid."""
    reader = _Reader(data)
    try:
        value = reader.value()
    except (IndexError, ValueError) as exc:
        raise ValueError(f"not serialized PHP: {exc}") from None
    if reader.pos != len(data):
        raise ValueError("serialized PHP: trailing bytes")
    return value


def serialize(value: PhpValue) -> bytes:
    """What PHP 8's ``serialize()`` writes for ``value``."""
    if value is None:
        return b"N;"
    if isinstance(value, bool):
        return b"b:1;" if value else b"b:0;"
    if isinstance(value, int):
        return b"i:%d;" % value
    if isinstance(value, float):
        return b"d:" + _php_float(value) + b";"
    if isinstance(value, bytes):
        return b's:%d:"%s";' % (len(value), value)
    if isinstance(value, PhpArray):
        return b"a:%d:{%s}" % (len(value.items), _pairs(value.items))
    if isinstance(value, PhpObject):
        return b'O:%d:"%s":%d:{%s}' % (len(value.name), value.name, len(value.items),
                                      _pairs(value.items))
    raise TypeError(f"cannot serialize {type(value).__name__} as PHP")


def _pairs(items: list[tuple[PhpKey, PhpValue]]) -> bytes:
    return b"".join(serialize(k) + serialize(v) for k, v in items)


def _php_float(value: float) -> bytes:
    """``serialize_precision = -1``: the shortest repr that round-trips."""
    if math.isnan(value):
        return b"NAN"
    if math.isinf(value):
        return b"INF" if value > 0 else b"-INF"
    if value.is_integer() and abs(value) < 1e15:
        return b"%d" % int(value)
    text = repr(value)
    if "e" in text:  # PHP writes 1.0E-5 where Python writes 1e-05
        mantissa, exp = text.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        text = f"{mantissa}E{'+' if int(exp) > 0 else '-'}{abs(int(exp))}"
    return text.encode("ascii")
