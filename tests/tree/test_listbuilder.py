"""List chunks: content-defined boundaries keep an edit local (tree/listbuilder.py)."""

from __future__ import annotations

import random

from helpers import MemSink
from hypothesis import given, settings
from hypothesis import strategies as st

from coursevault.tree.listbuilder import AVG_FANOUT, ListBuilder
from coursevault.tree.nodes import iter_list


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=3000),
    pos=st.integers(min_value=0),
    seed=st.integers(0, 2**32),
)
def test_list_insert_rewrites_few_chunks(n: int, pos: int, seed: int) -> None:
    rnd = random.Random(seed)
    items = [rnd.randbytes(32) for _ in range(n)]
    sink = MemSink()
    builder = ListBuilder(sink)
    for item in items:
        builder.append(item)
    root = builder.finish()
    assert list(iter_list(sink.get, root)) == items if n > 1 else root == items[0]

    before = set(sink.objects)
    items.insert(pos % (n + 1), rnd.randbytes(32))
    builder = ListBuilder(sink)
    for item in items:
        builder.append(item)
    root2 = builder.finish()
    assert list(iter_list(sink.get, root2)) == items
    new = set(sink.objects) - before
    levels = 1
    size = len(items)
    while size > AVG_FANOUT:
        size //= AVG_FANOUT
        levels += 1
    assert len(new) <= 2 * levels + 2  # a chunk per level (two where a boundary moved)
