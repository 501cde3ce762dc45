"""Whether two members equal modulo ids are renumberings of each other.

Masking every id to one placeholder would let a writer put the wrong user
on a grade, or the wrong parent on a post, and still be "equal modulo ids".
A restore renumbers each kind of id (a ``userid``, a ``post`` id...) one to
one, so across the two members every id of a kind must map to one id and
back: 114 -> 112 everywhere, never 114 -> 112 here and 114 -> 113 there.
The masked members being equal, their masked ids sit at the same offsets,
which pairs them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .restoremask import MaskedId


@dataclass(frozen=True)
class Conflict:
    """Where the renumbering is not one to one: the id kind, and the two
    pairings (ours, theirs) that contradict each other, at ``offset`` in the
    masked member."""

    offset: int
    kind: bytes
    seen: tuple[bytes, bytes]
    here: tuple[bytes, bytes]

    def __str__(self) -> str:
        kind = self.kind.decode("utf-8", "replace")
        (a, b), (c, d) = ((x.decode(), y.decode()) for x, y in (self.seen, self.here))
        return f"{kind} renumbered inconsistently: ours {a} was theirs {b}, here ours {c} is theirs {d}"


@dataclass
class Renumbering:
    """The renumbering seen so far in one course, kind by kind, both ways:
    fed member by member, so a user id renumbered one way in grades.xml and
    another in forum.xml is caught too."""

    forward: dict[tuple[bytes, bytes], bytes] = field(default_factory=dict)
    backward: dict[tuple[bytes, bytes], bytes] = field(default_factory=dict)

    def conflict(
        self, member: str, ours: list[MaskedId], theirs: list[MaskedId]
    ) -> Conflict | None:
        """``renumbering_conflict`` against what the other members showed,
        each kind of id qualified by the kind of member unless it is one
        table's everywhere (``GLOBAL``)."""
        if member.endswith("inforef.xml"):
            return None  # id-sorted sets: a renumbering reorders them
        where = re.sub(r"_\d+(?=/)", "", member).encode()
        ours, theirs = _qualified(ours, where), _qualified(theirs, where)
        return renumbering_conflict(ours, theirs, self.forward, self.backward)


# Kinds of id that name one table wherever they appear.
GLOBAL = frozenset(
    {b"userid", b"usermodified", b"createdby", b"modifiedby", b"contextid", b"roleid"}
    | {b"courseid", b"groupid"}
)
# Ids the restore does not renumber but resets (masked, never paired): the
# MariaDB site's role assignments and enrolments have modifierid 0 where
# Moodle's had 2 or 112.
NOT_RENUMBERED = frozenset({b"modifierid"})


def _qualified(ids: list[MaskedId], where: bytes) -> list[MaskedId]:
    """Each kind qualified by the member's kind, unless it is global or
    names its member already (``member:kind``: an activity's calendar event
    names the activity's row of the module's own member)."""
    return [
        (offset, kind if kind in GLOBAL or b".xml:" in kind else where + b":" + kind, value)
        for offset, kind, value in ids
        if kind not in NOT_RENUMBERED
    ]


def renumbering_conflict(
    ours: list[MaskedId],
    theirs: list[MaskedId],
    forward: dict[tuple[bytes, bytes], bytes] | None = None,
    backward: dict[tuple[bytes, bytes], bytes] | None = None,
) -> Conflict | None:
    """The first place where ours' ids are not a one-to-one renumbering of
    theirs, kind by kind (extending ``forward``/``backward``: ours -> theirs
    and back); None when they are."""
    theirs_at = {offset: (kind, value) for offset, kind, value in theirs}
    forward = {} if forward is None else forward
    backward = {} if backward is None else backward
    for offset, kind, value in ours:
        if theirs_at.get(offset, (None,))[0] != kind:
            continue  # a value the restore rewrote (RESTORED_AS), not renumbered
        their_value = theirs_at[offset][1]
        mapped = forward.setdefault((kind, value), their_value)
        back = backward.setdefault((kind, their_value), value)
        if mapped != their_value:
            return Conflict(offset, kind, (value, mapped), (value, their_value))
        if back != value:
            return Conflict(offset, kind, (back, their_value), (value, their_value))
    return None
