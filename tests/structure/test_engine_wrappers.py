"""Bare wrapper elements (a subplugin's ``subplugin_*`` element) make no
instance of their own (engine._wrappers): the members must be byte for byte
what making one per parent row writes, and only elements nothing below can
look for are taken as wrappers."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO, Any

import pytest

from coursevault.definitions.run import course_members, start_run
from coursevault.moodledb import site
from coursevault.moodledb.demosite import build_demo_site
from coursevault.structure import engine, plan
from coursevault.structure.elements import In, Nested, Rows, Sql, Table, Up
from coursevault.structure.plan import FileRef, Spooled


def _members(url: str, dataroot: Path, spool: IO[bytes] | None = None) -> dict[str, bytes]:
    """The course's members but moodle_backup.xml (its run's own values) and
    files; with a ``spool``, read back from where execute wrote them."""
    out: dict[str, bytes] = {}
    with site.read_transaction(site.open_engine(url), "mdl_") as reader:
        run = start_run(reader, 2)
        run.dataroot = str(dataroot)
        for name, data in course_members(run, spool=spool):
            if name == "moodle_backup.xml" or isinstance(data, FileRef):
                continue
            if isinstance(data, Spooled):
                assert spool is not None
                at = spool.tell()
                spool.seek(data.offset)
                out[name] = spool.read(data.length)
                spool.seek(at)
            else:
                out[name] = bytes(data)
    return out


def test_members_are_the_same_with_and_without_wrappers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/site.db"
    build_demo_site(url, tmp_path / "data", "S", seed=1)
    seen: list[int] = []
    found = engine._wrappers

    def counting(root: Nested) -> frozenset[int]:
        wrappers = found(root)
        seen.append(len(wrappers))
        return wrappers

    monkeypatch.setattr(engine, "_wrappers", counting)
    with_wrappers = _members(url, tmp_path / "data")
    assert sum(seen) > 10  # the assignments' subplugin wrappers, at least
    monkeypatch.setattr(engine, "_wrappers", lambda _root: frozenset())
    assert _members(url, tmp_path / "data") == with_wrappers


def test_members_written_into_a_spool_are_the_bytes_execute_hands_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """plan.execute with a spool (as a database backup runs it): every
    member that is not a file goes there, rendered chunk by chunk, and
    reads back as the same bytes."""
    url = f"sqlite:///{tmp_path}/site.db"
    build_demo_site(url, tmp_path / "data", "S", seed=1)
    rendered: list[int] = []
    render_into = plan.render_into

    def counting(*args: Any, **kwargs: Any) -> int:
        rendered.append(render_into(*args, **kwargs))
        return rendered[-1]

    monkeypatch.setattr(plan, "render_into", counting)
    with tempfile.TemporaryFile() as spool:
        spooled = _members(url, tmp_path / "data", spool)
    assert len(rendered) > 100 and max(rendered) > 100_000  # users.xml, the assignments
    assert spooled == _members(url, tmp_path / "data")


def test_only_what_nothing_can_look_for_is_a_wrapper() -> None:
    row = Nested("row", fields=("id",), source=Table("t", {"parent": Up("id")}))
    plain = Nested("plain", children=[row])
    named = Nested("named", children=[
        Nested("r", fields=("id",), source=Table("t", {"x": Up("id", element="named")}))])
    keyed = Nested("keyed", children=[Nested("r", fields=("id",), source=Sql(
        "SELECT a AS k, id FROM {t} WHERE a IN (?)", [In(Up("v", element="keyed"))], key="k"))])
    python = Nested("python", children=[
        Nested("r", fields=("id",), source=Rows(lambda _c, _p: [{"id": "1"}]))])
    gated = Nested("gated", userinfo=True, children=[Nested("r", source=Table("t", {}))])
    valued = Nested("valued", fields=("x",), children=[Nested("r", source=Table("t", {}))])
    root = Nested("root", children=[plain, named, keyed, python, gated, valued])
    assert engine._wrappers(root) == frozenset({id(plain)})
