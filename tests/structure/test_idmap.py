"""IdMap behaves as one dict per table keyed by the old id's text, whatever
order the ids come in, and holds ascending ids in arrays (20 bytes a run
of ids that old and new follow one after another), not in a dict."""

from __future__ import annotations

import random
import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from coursevault.structure.idmap import IdMap

OLDS = st.one_of(
    st.integers(min_value=-5, max_value=10**20),
    st.sampled_from(["012", " 7", "+3", "x", "", "0", "٣"]),  # not plain decimal ids
    st.integers(min_value=0, max_value=50).map(str),
)


@given(st.lists(st.tuples(st.sampled_from(["user", "groups"]), OLDS,
                          st.integers(min_value=-10, max_value=2**40)), max_size=60),
       st.lists(st.tuples(st.sampled_from(["user", "groups", "scale"]), OLDS), max_size=30))
def test_as_a_dict_of_texts(pairs: list[tuple[str, object, int]],
                            probes: list[tuple[str, object]]) -> None:
    ids = IdMap()
    model: dict[str, dict[str, int]] = {}
    for table, old, new in pairs:
        ids.set(table, old, new)
        model.setdefault(table, {})[str(old)] = new
    for table, old, _new in pairs:
        assert ids.get(table, old) == model[table][str(old)]
    for table, old in probes:
        assert ids.get(table, old) == model.get(table, {}).get(str(old))
    assert ids.get("user", None) is None
    assert ids.counts() == {t: len(m) for t, m in sorted(model.items()) if m}


def test_an_ascending_run_is_compact() -> None:
    tracemalloc.start()
    ids = IdMap()
    for old in range(1000, 101000):
        ids.set("assign_submission", old, old * 3)
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert ids.get("assign_submission", "50000") == 150000
    assert ids.get("assign_submission", 999) is None
    assert size < 100_000 * 24  # a dict of texts took ~110 bytes a pair
    # ids out of order are kept too, and overwrite as a dict would
    shuffled = list(range(1, 2000))
    random.Random(1).shuffle(shuffled)
    for old in shuffled:
        ids.set("user", old, -old)
    ids.set("assign_submission", 1000, 7)
    assert all(ids.get("user", old) == -old for old in shuffled)
    assert ids.get("assign_submission", 1000) == 7


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=40),
                          st.integers(min_value=1, max_value=30),
                          st.integers(min_value=0, max_value=3)), max_size=20),
       st.lists(st.tuples(st.integers(min_value=0, max_value=300),
                          st.integers(min_value=-5, max_value=500)), max_size=20))
def test_runs_as_a_dict(blocks: list[tuple[int, int, int]],
                        later: list[tuple[int, int]]) -> None:
    """Runs of ids (old and new one after another, as a restore gives them),
    with gaps, ids again inside a run (to its own id or another), and ids
    below the last run: the same answers as a dict."""
    ids = IdMap()
    model: dict[str, int] = {}
    old, new = 1, 100
    for gap, length, jump in blocks:
        old += gap
        new += jump
        for _ in range(length):
            ids.set("t", old, new)
            model[str(old)] = new
            old, new = old + 1, new + 1
    for o, n in later:
        ids.set("t", o, n)
        model[str(o)] = n
    for o in range(0, old + 5):
        assert ids.get("t", o) == model.get(str(o))
    assert ids.counts() == ({"t": len(model)} if model else {})


def test_consecutive_ids_take_no_memory_per_id() -> None:
    """An M course's 126,310 ids made 155 runs: memory by runs, not ids."""
    tracemalloc.start()
    ids = IdMap()
    for old in range(1000, 101000):
        ids.set("assign_submission", old, old + 5000)
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert size < 2_000
    assert ids.get("assign_submission", 100999) == 105999
    assert ids.get("assign_submission", 101000) is None
    assert ids.counts() == {"assign_submission": 100_000}
