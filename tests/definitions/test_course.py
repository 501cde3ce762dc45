"""The course task, the section tasks and the block tasks: every member under
course/ and sections/ of a backup made from the reference site's database
must be byte-identical to Moodle's own backup of the same course, for every
course of the site.

Only those tasks run (the activity tasks are other definitions' business),
so the test stays fast.  PostgreSQL is required (skipped when absent, an
error under CI=true).  The MariaDB copy of the site is compared too when it
is loaded, but it holds the courses as Moodle's restore wrote them there --
other ids, restore-time timestamps, '' where PostgreSQL has NULL -- so
there the members must match Moodle's by name (ids aside) and element
structure, not byte for byte.
"""

from __future__ import annotations

import base64
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from functools import cache

import pytest
from reference import MARIADB, POSTGRES, backup_members, database, first_difference, site_courses

from coursevault.definitions.block_task import encode_configdata
from coursevault.definitions.course_plan import course_plan
from coursevault.definitions.course_task import encode_links
from coursevault.definitions.run import start_run, transformer
from coursevault.moodle2 import phpserial
from coursevault.moodledb.site import open_engine, read_transaction
from coursevault.structure.context import TaskContext
from coursevault.structure.plan import execute
from coursevault.structure.registry import LinkContext

OURS = re.compile(r"(\./)?(course|sections)/.*\.xml")
_engine = cache(open_engine)  # one engine (and pooled connection) per database


@cache
def _reference(courseid: str) -> dict[str, bytes]:
    return backup_members(courseid, OURS.fullmatch)


def _is_ours(directory: str) -> bool:
    return directory.startswith(("course", "sections/")) or "/blocks/" in directory


def _ours(url: str, courseid: str) -> dict[str, bytes]:
    """The course/ and sections/ members of the course's backup."""
    with read_transaction(_engine(url), "mdl_") as reader:
        run = start_run(reader, courseid)
        tasks = [t for t in course_plan(run) if _is_ours(t.directory)]
        out = {}
        for name, data in execute(tasks, run, transform=transformer(run), encrypt=None):
            if OURS.fullmatch(name) and isinstance(data, bytes):
                out[name] = data
        return out


def _compare(url: str, courseid: str, refid: str) -> Iterator[str]:
    ref = _reference(refid)
    ours = _ours(url, courseid)
    assert ref, f"course {refid}: the reference backup has no course/ or sections/ members"
    for name in sorted(set(ref) | set(ours)):
        if name not in ours:
            yield f"{name}: missing"
        elif name not in ref:
            yield f"{name}: extra"
        elif ref[name] != ours[name]:
            yield f"{name}: {first_difference(ref[name], ours[name])}"


def _skeleton(xml: bytes) -> bytes:
    """The member's elements and attribute names, without values.  Course
    format options are left out: Moodle's restore on MariaDB gave four
    courses (BT, test, MDL-61614, Scratch) options their PostgreSQL
    originals do not have."""
    xml = re.sub(rb"<courseformatoptions>.*</courseformatoptions>", b"", xml, flags=re.S)
    xml = re.sub(rb'="[^"]*"', b'=""', xml)
    return re.sub(rb">[^<]*<", b"><", xml)


def _shape(members: dict[str, bytes]) -> list[tuple[str, bytes]]:
    return sorted((re.sub(r"_\d+", "_N", name), _skeleton(data))
                  for name, data in members.items())


COURSES = site_courses()


@pytest.mark.parametrize("course", COURSES, ids=[c["shortname"] for c in COURSES])
def test_course_and_section_members_identical_postgresql(course: dict[str, str]) -> None:
    url = database(POSTGRES, required=True)
    problems = list(_compare(url, course["courseid"], course["courseid"]))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("course", COURSES, ids=[c["shortname"] for c in COURSES])
def test_course_and_section_members_same_shape_mariadb(course: dict[str, str]) -> None:
    url = database(MARIADB, required="COURSEVAULT_REFSITE_MARIADB" in os.environ)
    ref = _shape(_reference(course["courseid"]))
    ours = _shape(_ours(url, course["maria_courseid"]))
    assert [n for n, _ in ours] == [n for n, _ in ref]
    different = [n for (n, a), (_, b) in zip(ref, ours, strict=True) if a != b]
    assert not different, different


def test_course_links_encoded_as_moodle_does() -> None:
    """``backup_course_task::encode_content_links``: any course id, both
    schemes, and the urlencoded pluginfile form."""
    link = LinkContext("http://example.org/moodle", "7")
    content = ("https://example.org/moodle/course/view.php?id=12&section=2 "
               "http://example.org/moodle/pluginfile.php/383/course/summary/a.png "
               "http%3A%2F%2Fexample.org%2Fmoodle%2Fpluginfile.php%2F44 "
               "http://example.org/moodle/badges/view.php?type=2&id=7 "
               "http://example.org/moodle/user/index.php?id=x")
    assert encode_links(content, link) == (
        "$@COURSEVIEWBYID*12@$&section=2 $@PLUGINFILEBYCONTEXT*383@$/course/summary/a.png "
        "$@PLUGINFILEBYCONTEXTURLENCODED*44@$ $@BADGESVIEWBYID*7@$ "
        "http://example.org/moodle/user/index.php?id=x")


def _configdata(ctx: TaskContext, text: bytes) -> bytes:
    encoded = encode_configdata(ctx, base64.b64encode(text).decode(), ("text",))
    return base64.b64decode(encoded)


def test_block_configdata_reserialised_as_php_does() -> None:
    """block_html's configdata: text encoded, other values kept as PHP
    typed them, a missing configdata becoming PHP's ``(object)(array)false``."""
    url = database(POSTGRES, required=True)
    with read_transaction(_engine(url), "mdl_") as reader:
        run = start_run(reader, "38")
        ctx = TaskContext(run, {"courseid": "38"})
        link = run.site.wwwroot + "/course/view.php?id=38"
        text = b'O:8:"stdClass":4:{s:5:"title";s:1:"x";s:4:"text";s:%d:"%s";i:3;d:0.5;s:1:"n";N;}' % (
            len(link) + 3, f"<a>{link}".encode())
        assert _configdata(ctx, text) == (
            b'O:8:"stdClass":4:{s:5:"title";s:1:"x";s:4:"text";s:24:"<a>$@COURSEVIEWBYID*38@$";'
            b's:1:"3";d:0.5;s:1:"n";N;}')
        assert encode_configdata(ctx, None, ("text",)) == base64.b64encode(
            b'O:8:"stdClass":1:{s:1:"0";b:0;}').decode()


def test_php_serialisation_round_trips() -> None:
    for text in (b'a:2:{i:0;s:3:"a\xc3\xa9";s:1:"k";a:1:{i:5;b:1;}}', b"d:1.0E-5;", b"d:-0.25;",
                 b'O:8:"stdClass":0:{}', b"i:-3;", b"N;"):
        assert phpserial.serialize(phpserial.unserialize(text)) == text


def test_logs_written_when_the_setting_is_on() -> None:
    """With logs on (never in the reference backups), the course task writes
    logs.xml, logstores.xml (every standard-log event of the course context,
    ``other`` base64-encoded) and loglastaccess.xml."""
    url = database(POSTGRES, required=True)
    with read_transaction(_engine(url), "mdl_") as reader:
        run = start_run(reader, "38", {"logs": True})
        tasks = [t for t in course_plan(run) if t.directory == "course"]
        members = dict(execute(tasks, run, transform=transformer(run), encrypt=None))
        events = list(reader.rows("logstore_standard_log",
                                  {"contextid": run.memo["coursecontextid"]},
                                  columns=("id", "other")))
    assert {"course/logs.xml", "course/logstores.xml", "course/loglastaccess.xml"} <= set(members)
    stores = members["course/logstores.xml"]
    assert isinstance(stores, bytes)
    found = ET.fromstring(stores).findall("./logstore/subplugin_logstore_standard_logstore/"
                                          "logstore_standard_log")
    assert [e.get("id") for e in found] == [e["id"] for e in events]
    first = next(e for e in events if e["other"] is not None)
    element = next(f for f in found if f.get("id") == first["id"])
    assert base64.b64decode(element.findtext("other") or "").decode() == first["other"]
