"""What tree builders need from the store: a narrow interface, easy to fake in tests."""

from __future__ import annotations

from typing import Protocol

from coursevault.store.ids import ObjectId, ObjectType


class ObjectSink(Protocol):
    """Satisfied by :class:`coursevault.store.session.WriteSession`."""

    def put(self, kind: ObjectType, payload: bytes) -> ObjectId: ...

    def put_tree(self, refs: list[ObjectId], body: bytes) -> ObjectId: ...

    def get(self, oid: ObjectId) -> tuple[ObjectType, bytes]: ...

    def has(self, oid: ObjectId) -> bool:
        """Committed in the repository before this session (not merely put now)."""
        ...
