"""What a restore learns from ``moodle_backup.xml`` before writing anything.

Moodle's restore reads the same file first (``backup_general_helper::
get_backup_information``): the release that wrote the backup, the source
site and course, the sections and activities with their folders, and the
root settings (a backup made without users has no user data to restore).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from coursevault.errors import BadInputError

MANIFEST = "moodle_backup.xml"


@dataclass(frozen=True)
class ActivityInfo:
    moduleid: str
    sectionid: str
    modulename: str
    title: str
    directory: str


@dataclass(frozen=True)
class SectionInfo:
    sectionid: str
    title: str
    directory: str


@dataclass
class BackupInfo:
    release: str
    moodle_version: str
    site_hash: str
    course_id: str
    course_fullname: str
    course_shortname: str
    course_startdate: int
    course_contextid: str
    system_contextid: str
    activities: list[ActivityInfo] = field(default_factory=list)
    sections: list[SectionInfo] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)
    kind: str = "course"  # <details><detail><type>: course, section or activity
    moodle_release: str = ""  # the full release string, "4.0dev (Build: 20210924)"

    def setting(self, name: str, default: bool = False) -> bool:
        value = self.settings.get(name)
        return default if value is None else value == "1"


def read_backup_info(data: bytes) -> BackupInfo:
    """Parse ``moodle_backup.xml`` (a backup not in Moodle 2 format is
    refused); what kind of backup it is, ``require_course_backup`` checks."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise BadInputError(f"{MANIFEST}: not well-formed XML ({exc})") from None
    info = root.find("information")
    if info is None:
        raise BadInputError(f"{MANIFEST}: no <information> element")

    def text(path: str, default: str = "") -> str:
        el = info.find(path)
        return default if el is None or el.text is None else el.text

    result = BackupInfo(
        release=text("backup_release"),
        moodle_version=text("moodle_version"),
        site_hash=text("original_site_identifier_hash"),
        course_id=text("original_course_id"),
        course_fullname=text("original_course_fullname"),
        course_shortname=text("original_course_shortname"),
        course_startdate=int(text("original_course_startdate", "0") or 0),
        course_contextid=text("original_course_contextid"),
        system_contextid=text("original_system_contextid"),
        kind=text("details/detail/type") or "course",
        moodle_release=text("moodle_release"),
    )
    for act in info.iterfind("contents/activities/activity"):
        result.activities.append(
            ActivityInfo(
                _child(act, "moduleid"),
                _child(act, "sectionid"),
                _child(act, "modulename"),
                _child(act, "title"),
                _child(act, "directory"),
            )
        )
    for sec in info.iterfind("contents/sections/section"):
        result.sections.append(
            SectionInfo(_child(sec, "sectionid"), _child(sec, "title"), _child(sec, "directory"))
        )
    for setting in info.iterfind("settings/setting"):
        if _child(setting, "level") == "root":
            result.settings[_child(setting, "name")] = _child(setting, "value")
    return result


def require_course_backup(info: BackupInfo) -> None:
    """An activity or section backup is refused with what it is."""
    if info.kind != "course":
        article = "an" if info.kind[:1] in "aeiou" else "a"
        raise BadInputError(
            f"{MANIFEST}: {article} {info.kind} backup, not a course backup "
            "(restore and export --no-users take whole-course backups)"
        )


def has_legacy_question_bank(questions_xml: bytes) -> bool:
    """questions.xml in the form before Moodle 4.0's question bank: questions
    straight under their category, without bank entries and versions.  Moodle
    4.0's development builds wrote it until the bank changed (a "4.0dev" of
    2021-09 in the corpus), so the release alone does not tell."""
    return b"<question id=" in questions_xml and b"<question_bank_entry " not in questions_xml


def _child(el: ET.Element, name: str) -> str:
    found = el.find(name)
    return "" if found is None or found.text is None else found.text
