"""Fixtures of tests/dbrestore: the reference site (tests/dbbackup's
``refsite`` helpers; skipped without it, an error under CI=true, as there),
and the round-trip table printed after the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from dbbackup.refsite import RefSite, missing_variables, refsite_from_env

from .sitecopy import SiteCopy, site_copy, unavailable
from .tinysite import Tiny, build_tiny


@pytest.fixture(scope="session")
def refsite() -> RefSite:
    missing = missing_variables()
    if missing:
        unavailable("unset " + ", ".join(missing))
    return refsite_from_env()


@pytest.fixture(scope="session")
def site_copies(
    refsite: RefSite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], SiteCopy]]:
    """``site_copies(server)``: the package's one writable copy of the site
    on that server, made on first use (a copy and its drop cost 5-30 s on
    a busy machine), dropped when the session ends.  Every test restores
    new courses only, and checks what it wrote against what was there."""
    made: dict[str, SiteCopy] = {}
    with ExitStack() as copies:

        def on(server: str) -> SiteCopy:
            if server not in made:
                work = tmp_path_factory.mktemp(f"site-{server}")
                made[server] = copies.enter_context(site_copy(refsite, server, work, "tests"))
            return made[server]

        yield on


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    """A tiny course backed up from one demo site, and another demo site to
    restore it into (tinysite.py; no server needed)."""
    return build_tiny(tmp_path_factory.mktemp("tiny"))

