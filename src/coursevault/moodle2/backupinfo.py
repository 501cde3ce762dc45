"""What moodle_backup.xml says about a backup: site, course, date, release.

Read streaming with lxml (the manifest can list thousands of activities);
entities are never resolved and nothing is fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree

# The longest value of INFO_FIELDS taken: Moodle's are a file name, a URL,
# a course's names (254 characters in its schema), numbers and hashes.  One
# of 50 MB went into the snapshot record and its ref, and every `snapshots`
# read it again (400 MB).
MAX_INFO_FIELD = 4096
INFO_FIELDS = (
    "name",
    "moodle_version",
    "moodle_release",
    "backup_version",
    "backup_release",
    "backup_date",
    "original_wwwroot",
    "original_site_identifier_hash",
    "original_course_id",
    "original_course_fullname",
    "original_course_shortname",
    "original_course_format",
)


LAST_BACKUP_DATE = 253402300799  # 9999-12-31T23:59:59Z: a time every tool can write


class BackupInfoError(Exception):
    """moodle_backup.xml lacks what every Moodle backup has."""


@dataclass(frozen=True)
class BackupInfo:
    fields: dict[str, str]
    backup_id: str | None

    @property
    def backup_date(self) -> int:
        try:
            date = int(self.fields["backup_date"])
        except (KeyError, ValueError):
            raise BackupInfoError("moodle_backup.xml has no valid backup_date") from None
        if not 0 <= date <= LAST_BACKUP_DATE:
            raise BackupInfoError(f"moodle_backup.xml's backup_date {date} is out of range")
        return date

    @property
    def course_key(self) -> str:
        site = self.fields.get("original_site_identifier_hash", "").strip()
        course = self.fields.get("original_course_id", "").strip()
        if not site or not course:
            raise BackupInfoError(
                "moodle_backup.xml lacks original_site_identifier_hash or original_course_id"
            )
        return f"{site}-{course}"


def read_backup_info(stream: Any) -> BackupInfo:
    """Read the manifest from any binary file object (a spool, an open file)."""
    fields: dict[str, str] = {}
    backup_id = None
    context = etree.iterparse(
        stream,
        events=("end",),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=True,
    )
    try:
        for _ev, el in context:
            parent = el.getparent()
            if parent is not None and parent.tag == "information" and el.tag in INFO_FIELDS:
                text = el.text or ""
                if len(text) > MAX_INFO_FIELD:  # it is copied into every snapshot record
                    raise BackupInfoError(
                        f"information/{el.tag} holds {len(text):,} characters "
                        f"(a Moodle backup's hold at most a few hundred; {MAX_INFO_FIELD:,} taken)")
                fields[el.tag] = text
            elif el.tag == "detail" and backup_id is None:
                backup_id = el.get("backup_id")
            # what is read of an element is read at its end: then it goes, and
            # so do the siblings before it (a manifest of millions of elements
            # outside <information> held them all: 1.7 GB for a 57 kB archive)
            el.clear(keep_tail=True)
            if parent is not None:  # the root's siblings are comments and PIs: kept
                while el.getprevious() is not None:
                    del parent[0]
    except etree.XMLSyntaxError as exc:
        raise BackupInfoError(f"moodle_backup.xml is malformed: {exc}") from None
    if "backup_date" not in fields:
        raise BackupInfoError("moodle_backup.xml has no information/backup_date")
    return BackupInfo(fields, backup_id)
