"""A backup whose activity folder is damaged: its module.xml or its own
XML (``forum.xml``) missing, or that XML without the activity's row.

The activity was said to be "left out" while its course module and
module context had been written: a course module of instance 0 stayed in
its section, on which Moodle's course page fails.  A missing member now
leaves the activity out before anything of it is written (the warning
names the member); an activity XML without its row is a damaged backup,
refused whole (exit 2) with nothing written."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from .atomic_helpers import SiteProbe
from .clirun import refused_both_ways, run, run_json
from .tinysite import Tiny

EMPTY_FORUM = b'<?xml version="1.0" encoding="UTF-8"?>\n<activity id="1">\n</activity>'

Damage = Callable[[str, bytes], bytes | None]  # member name, bytes -> new bytes or dropped


def damaged(tiny: Tiny, work: Path, damage: Damage) -> tuple[str, str]:
    """The tiny course's snapshot exported, damaged, ingested in a new
    repository: (repository, forum folder)."""
    run_json("-r", tiny.repo, "export", tiny.snapshot, "-o", work / "tiny.mbz")
    out = io.BytesIO()
    forum = ""
    with tarfile.open(work / "tiny.mbz") as src, tarfile.open(fileobj=out, mode="w:gz") as dst:
        for info in src.getmembers():
            name = info.name.removeprefix("./")
            data = src.extractfile(info).read() if info.isfile() else None  # type: ignore[union-attr]
            if name.startswith("activities/forum_") and name.endswith("/forum.xml"):
                forum = name.removesuffix("/forum.xml")
            if data is not None:
                changed = damage(name, data)
                if changed is None:
                    continue
                info.size = len(changed)
                dst.addfile(info, io.BytesIO(changed))
            else:
                dst.addfile(info)
    (work / "damaged.mbz").write_bytes(out.getvalue())
    repo = str(work / "repo")
    assert run("-r", repo, "init").code == 0
    run_json("-r", repo, "ingest", work / "damaged.mbz", "--course", "damaged")
    assert forum
    return repo, forum


def instance_zero(site: SiteProbe) -> int:
    with site.engine.connect() as conn:
        return int(conn.execute(sa.text(
            "SELECT COUNT(*) FROM mdl_course_modules WHERE instance = 0")).scalar_one())


def test_an_activity_missing_its_own_xml_is_left_out_whole(tiny: Tiny, tmp_path: Path) -> None:
    for lacking in ("module.xml", "forum.xml"):
        work = tmp_path / lacking
        work.mkdir()
        repo, forum = damaged(tiny, work, lambda name, data, lacking=lacking: (
            None if name.startswith("activities/forum_") and name.endswith("/" + lacking)
            else data))
        site = tiny.copy(work / "site")
        result = run("-r", repo, "restore", "damaged@latest", "--db", site.url,
                     "--dataroot", site.dataroot)
        assert result.code == 0, result
        assert f"left out: {forum}" in result.out, result
        assert f"{forum}: the backup has no {lacking}: left out" in result.err, result
        assert instance_zero(site) == 0, f"{lacking}: a course module of no instance"


def test_an_activity_xml_without_its_row_is_refused(tiny: Tiny, tmp_path: Path) -> None:
    repo, forum = damaged(tiny, tmp_path, lambda name, data: (
        EMPTY_FORUM if name.startswith("activities/forum_") and name.endswith("/forum.xml")
        else data))
    site = tiny.copy(tmp_path / "site")
    before = site.state()
    refused_both_ways(repo, "damaged@latest", site.url, site.dataroot, f"{forum}/forum.xml: no forum row")
    assert not before.differences(site.state())
