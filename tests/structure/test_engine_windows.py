"""A windowed element (Nested ``window``: users.xml's users) is read, made,
expanded and written a window at a time:
the members must be byte for byte those of one window holding every row --
which the reference site checks against Moodle's own backups -- however
small the window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coursevault.definitions import final_users
from coursevault.definitions.run import course_members, start_run
from coursevault.moodledb import site
from coursevault.moodledb.demosite import build_demo_site
from coursevault.structure import engine
from coursevault.structure.elements import Nested, Rows
from coursevault.structure.plan import FileRef


def _members(url: str, settings: dict[str, bool]) -> dict[str, bytes]:
    """The course's members but moodle_backup.xml (its run's own values) and files."""
    with site.read_transaction(site.open_engine(url), "mdl_") as reader:
        run = start_run(reader, 2, settings)
        out: dict[str, bytes] = {}
        for name, data in course_members(run):
            if name != "moodle_backup.xml" and not isinstance(data, FileRef):
                assert isinstance(data, bytes)
                out[name] = data
    return out


@pytest.mark.parametrize("settings", [{}, {"anonymize": True}])
def test_users_written_seven_at_a_time_are_the_bytes_of_one_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: dict[str, bool]
) -> None:
    url = f"sqlite:///{tmp_path}/site.db"
    build_demo_site(url, tmp_path / "data", "S", seed=1)  # 100 users
    monkeypatch.setattr(final_users, "USERS_WINDOW", 100_000)
    whole = _members(url, settings)
    assert whole["users.xml"].count(b"<user id=") == 101  # the demo's users and the admin
    windows: list[int] = []
    read = final_users.user_rows

    def counting(ctx: Any, ids: list[str]) -> list[dict[str, Any]]:
        windows.append(len(ids))
        return read(ctx, ids)

    made: list[str] = []
    write_windowed = engine._write_windowed

    def windowed(*args: Any) -> None:
        made.append(args[2].name)
        write_windowed(*args)

    monkeypatch.setattr(final_users, "user_rows", counting)
    monkeypatch.setattr(engine, "_write_windowed", windowed)
    monkeypatch.setattr(final_users, "USERS_WINDOW", 7)
    assert _members(url, settings) == whole
    assert len(windows) == 15 and max(windows) == 7
    assert made == ["user"]


def test_a_windowed_element_is_made_only_as_it_is_written() -> None:
    top = engine.Instance(Nested("#top"), {}, None)
    with pytest.raises(TypeError, match="from Python"):
        engine._write_windowed(  # type: ignore[arg-type]
            None, top, Nested("user", attrs=("id",), window=2), None, None, frozenset())
    windowed = Nested("user", attrs=("id",), source=Rows(lambda _c, _p: ()), window=2)
    engine._expand(windowed, [top], None, frozenset())  # type: ignore[arg-type]
    assert top.kids is None
