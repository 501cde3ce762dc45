"""File chunking: the chunks do not depend on the window the file is read in."""

from __future__ import annotations

import io
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coursevault.tree import filechunks
from coursevault.tree.filechunks import iter_chunks

SIZES = (16 * 1024, 64 * 1024, 256 * 1024)  # a repository's default chunker


class _Trickle(io.RawIOBase):
    """Gives at most ``most`` bytes a read, as a pipe or a tar member may."""

    def __init__(self, data: bytes, most: int) -> None:
        self._data, self._pos, self._most = data, 0, most

    def read(self, n: int = -1) -> bytes:
        n = self._most if n < 0 else min(n, self._most)
        out = self._data[self._pos : self._pos + n]
        self._pos += len(out)
        return out


def _data(seed: int, size: int) -> bytes:
    rng = random.Random(seed)
    # runs of random and of repeated bytes: cuts by content and at max size
    parts, left = [], size
    while left > 0:
        n = min(left, rng.randrange(1, 400_000))
        parts.append(rng.randbytes(n) if rng.random() < 0.7 else bytes([rng.randrange(256)]) * n)
        left -= n
    return b"".join(parts)


def _chunks(data: bytes, window: int, most: int, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    monkeypatch.setattr(filechunks, "WINDOW", window)
    return list(iter_chunks(_Trickle(data, most), *SIZES))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32), size=st.integers(0, 6 << 20), most=st.sampled_from([4096, 1 << 30])
)
def test_chunks_are_the_same_whatever_the_window(seed: int, size: int, most: int) -> None:
    data = _data(seed, size)
    with pytest.MonkeyPatch.context() as mp:
        whole = _chunks(data, 64 << 20, 1 << 30, mp)  # the whole file in one window
        for window in (1 << 20, 300 * 1024, 1):  # below 4x max: the window grows to it
            assert _chunks(data, window, most, mp) == whole
    assert b"".join(whole) == data


@pytest.mark.parametrize("size", [0, 1, 16 * 1024, 300_000, 5 << 19, 9 << 20])
def test_large_files_cut_alike(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data(size, size)
    whole = _chunks(data, 64 << 20, 1 << 30, monkeypatch)
    assert _chunks(data, 1 << 20, 100_000, monkeypatch) == whole
    assert b"".join(whole) == data
    assert size < 2 * SIZES[2] or len(whole) > 2
