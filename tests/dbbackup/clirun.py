"""The ``cv`` fixture's result (conftest.py runs ``main(argv)`` in-process in
a fresh repository): plain code, since no test may import a conftest."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Result:
    code: int
    out: str
    err: str
