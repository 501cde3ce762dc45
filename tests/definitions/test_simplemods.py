"""page, resource, label, url, folder, imscp, book and glossary, backed up
from the reference site's database, against Moodle's own backups of it.

For every course of ../shared/moodle-site whose Moodle backup has one of
these modules, each module's member (``activities/page_N/page.xml``...)
must be byte-identical to Moodle's, and what the definitions annotated must
be what Moodle's inforef.xml for that activity lists: the same files, and
users and scales among those it lists (the activity's other steps --
roles, comments, grades -- annotate users too).

Only these modules' own steps run, not the whole course, so the test takes
a few seconds.  The site is read from PostgreSQL
(``COURSEVAULT_REFSITE_POSTGRES``, by default ``cv_refsite``, as scripts/refsite loads it), which
CI requires, and from MariaDB (``COURSEVAULT_REFSITE_MARIADB``, by default
``cv_refsite``) when it is there.  Moodle loaded the MariaDB site by
restoring each course, which renumbered the modules of some (gen_s, rich):
those cannot compare byte for byte and skip, saying so.
"""

from __future__ import annotations

import os
import re
import tarfile
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
import sqlalchemy as sa
from reference import DATAROOT, MARIADB, POSTGRES, SITE, site_courses

from coursevault.definitions.course_plan import course_plan
from coursevault.definitions.run import encrypter, start_run, transformer
from coursevault.moodledb.site import SiteReader, open_engine, read_transaction
from coursevault.structure import registry
from coursevault.structure.context import TaskContext
from coursevault.structure.engine import render

MODULES = ("page", "resource", "label", "url", "folder", "glossary", "book", "imscp")
# server -> URL (its variable, else the team's copy of the site)
SERVERS = {"postgresql": POSTGRES, "mariadb": MARIADB}
_MEMBER = re.compile(rf"activities/({'|'.join(MODULES)})_\d+/(\1|inforef)\.xml$")


def _backups() -> list[Path]:
    return sorted((SITE / "backups").glob("c*.mbz"))


@cache
def _reference(path: Path) -> dict[str, bytes]:
    """This area's members of one Moodle backup (and their inforef.xml)."""
    found = {}
    with tarfile.open(path) as tar:
        for info in tar:
            name = info.name.removeprefix("./")
            stream = tar.extractfile(info) if info.isfile() and _MEMBER.match(name) else None
            if stream is not None:
                found[name] = stream.read()
    return found


def _courses() -> list[str]:
    """PostgreSQL ids of the courses whose backup has one of the modules."""
    return [m.group(1).lstrip("0") for p in _backups() if _reference(p)
            for m in [re.match(r"c(\d+)-", p.name)] if m]


@pytest.fixture(scope="module", params=sorted(SERVERS))
def site(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(server, URL) of the reference site; PostgreSQL is required under CI."""
    server = request.param
    url = SERVERS[server]
    reason = None
    if not _backups():
        reason = f"no reference backups in {SITE}/backups"
    else:
        try:
            with open_engine(url).connect() as conn:
                conn.execute(sa.text("SELECT 1 FROM mdl_course WHERE id = 1"))
        except Exception as exc:  # any failure means "no site here"
            reason = f"reference site database {url} unavailable ({type(exc).__name__})"
    if reason is not None:
        if os.environ.get("CI") == "true" and server == "postgresql":
            pytest.fail(reason)
        pytest.skip(reason)
    return server, url


@cache
def _mariadb_ids() -> dict[str, str]:
    """PostgreSQL course id -> MariaDB course id (courses.tsv)."""
    return {r["courseid"]: r["maria_courseid"] for r in site_courses()}


def _our_members(reader: SiteReader, courseid: str) -> Iterator[tuple[str, bytes, TaskContext]]:
    """Each module task's own members, rendered as the plan would."""
    run = start_run(reader, courseid)
    run.dataroot = DATAROOT
    transform, encrypt = transformer(run), encrypter(run)
    plugins = registry.activities()
    for task in course_plan(run):
        modname = task.params.get("modulename")
        if modname not in MODULES:
            continue
        ctx = TaskContext(run, dict(task.params))
        for step in plugins[modname].steps(ctx):
            assert step.build is not None
            data = render(step.build(ctx), ctx, transform=transform, encrypt=encrypt)
            yield f"{task.directory}/{step.member}", data, ctx


def _first_difference(ours: bytes, theirs: bytes) -> str:
    """The element path of the first differing line, and both lines."""
    path: list[str] = []
    for mine, moodle in zip(ours.decode().splitlines(), theirs.decode().splitlines(), strict=False):
        if mine != moodle:
            return f"/{'/'.join(path)}: Moodle {moodle.strip()!r}, ours {mine.strip()!r}"
        tag = re.match(r"\s*<(/?)([\w:]+)[^>]*?(/?)>(.*)$", mine)
        if tag and not tag.group(3) and not tag.group(4):
            if tag.group(1):
                path.pop()
            else:
                path.append(tag.group(2))
    return f"lengths differ: Moodle {len(theirs)} bytes, ours {len(ours)}"


def _renumbered(name: str) -> str:
    """A member's path without its module's id (``activities/page_N/page.xml``)."""
    return re.sub(r"_\d+/", "_N/", name)


def _inforef(xml: bytes) -> dict[str, set[str]]:
    refs = re.finditer(r"<(?!info)(\w+)ref>(.*?)</\1ref>", xml.decode(), re.S)
    return {m.group(1): set(re.findall(r"<id>(\d+)</id>", m.group(2))) for m in refs}


# without the reference site, one case still runs, for the site fixture to skip or fail
@pytest.mark.parametrize("courseid", _courses() or ["no-site"])
def test_module_members_are_moodles(site: tuple[str, str], courseid: str) -> None:
    server, url = site
    path = next((SITE / "backups").glob(f"c{int(courseid):03d}-*.mbz"))
    reference = _reference(path)
    ours = courseid if server == "postgresql" else _mariadb_ids().get(courseid, courseid)
    seen = set()
    with read_transaction(open_engine(url), "mdl_") as reader:
        members = list(_our_members(reader, ours))
    if server == "mariadb" and any(name not in reference for name, _d, _c in members):
        # Moodle's restore into MariaDB numbered these modules differently:
        # no member compares byte for byte (tests/dbbackup compares them
        # modulo ids); here, the same members of the same modules are made
        assert Counter(_renumbered(n) for n, _d, _c in members) == Counter(
            _renumbered(n) for n in reference if not n.endswith("/inforef.xml"))
        return
    for name, data, ctx in members:
        seen.add(name)
        assert name in reference, f"{name}: Moodle's backup has no such member"
        assert data == reference[name], f"{name}: {_first_difference(data, reference[name])}"
        listed = _inforef(reference[name.rsplit("/", 1)[0] + "/inforef.xml"])
        annotated = {item: set(ids) for item, ids in ctx.ids.items.items()}
        files, moodles = annotated.get("file", set()), listed.get("file", set())
        assert files == moodles, (
            f"{name}: files only we annotate {sorted(files - moodles)}, "
            f"only Moodle {sorted(moodles - files)}")
        for item in ("user", "scale"):
            extra = annotated.get(item, set()) - listed.get(item, set())
            assert not extra, f"{name}: {item} ids Moodle does not list: {sorted(extra)}"
    expected = {n for n in reference if not n.endswith("/inforef.xml")}
    assert expected <= seen, f"not written: {sorted(expected - seen)}"
