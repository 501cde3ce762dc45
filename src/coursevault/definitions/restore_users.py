"""users.xml into the site: match each user as Moodle's restore does, or create it.

``restore_dbops::precheck_user``, for users of this site's own MNet host
(a remote user, with ``mnethosturl``, is matched by username on that host
or left out, as Moodle does without MNet configured):

- same site (the backup's site identifier hash is this site's): a user
  with the same id, username and host is that user (1A);
- another site: a user with the same username and host and the same email,
  or the same non-zero first access, is that user (2A);
- no user with that username on that host: the user is created, with its
  user context and preferences.

Where Moodle would stop the whole restore -- a user with that username
exists but is someone else (1D, 2C) -- coursevault creates the backup's user
under a new username, ``<username>.restored`` (then ``.restored2``...),
and names each one in the run's warnings: the course comes back whole and
no existing account is touched.  Deleted users in the backup are mapped to
nobody (their rows keep user id 0), as Moodle maps them when it finds no
match.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from coursevault.structure.restore_engine import RestoreContext
from coursevault.structure.reverse import NULL, XmlSource

CONTEXT_USER = 30
_SKIP = {"id", "contextid", "mnethosturl", "custom_fields", "tags", "preferences", "roles"}


@dataclass
class UserOutcome:
    matched: int = 0
    created: int = 0
    renamed: list[str] = field(default_factory=list)
    skipped: int = 0
    # old user context id -> the created user's new one (their files follow)
    contexts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"matched": self.matched, "created": self.created,
                "renamed": self.renamed, "skipped": self.skipped}


def restore_users(rc: RestoreContext, read: Callable[[], XmlSource], *, same_site: bool,
                  now: int) -> UserOutcome:
    """Map every user of users.xml (``read()`` gives its bytes, whole or in
    pieces as they are rendered) to a user of the site (``ids["user"]``).

    One user at a time: users.xml is read as a stream of ``<user>``
    elements, each dropped once mapped, from pieces rendered as they are
    parsed (a whole M course's thousand users parsed at once took ~20 MB,
    and its 1.5 MB of bytes read whole 6.6 MB at the root task's peak); a
    first pass reads only the usernames, so the site's users of those names
    are still read at once, with only the columns matching needs."""
    outcome = UserOutcome()
    localhost = _local_host(rc)
    usernames = [el.findtext("username") or "" for el in _users(read())]
    local: dict[str, dict[str, Any]] = {}
    for row in rc.writer.rows_in("user", "username", usernames, {"mnethostid": localhost},
                                 columns=("id", "username", "email", "firstaccess")):
        local.setdefault(str(row["username"]), row)
    del usernames
    for el in _users(read()):
        _restore_user(rc, el, local, outcome, same_site=same_site, localhost=localhost, now=now)
    return outcome


def _users(data: XmlSource) -> Iterator[ET.Element]:
    """The ``<user>`` elements of users.xml, one at a time, each cleared
    once the caller is done with it."""
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    depth = 0
    for piece in [data] if isinstance(data, bytes) else data:
        parser.feed(piece)
        for event, el in parser.read_events():  # type: ignore[misc]  # (event, element)
            if event == "start":
                depth += 1
                continue
            depth -= 1
            if depth == 1 and isinstance(el, ET.Element) and el.tag == "user":
                yield el
                el.clear()
    parser.close()


def _restore_user(rc: RestoreContext, el: ET.Element, local: dict[str, dict[str, Any]],
                  outcome: UserOutcome, *, same_site: bool, localhost: int, now: int) -> None:
    values = _values(el)
    old = el.get("id", "")
    if values.get("mnethosturl") is not None:
        found = rc.writer.one("user", {"username": values.get("username")})
        if found is None:
            outcome.skipped += 1
            return
        rc.ids.set("user", old, int(found["id"]))
        outcome.matched += 1
        return
    if values.get("deleted") == "1":
        outcome.skipped += 1
        return
    existing = local.get(values.get("username") or "")
    if existing is not None and _same_user(existing, old, values, same_site):
        rc.ids.set("user", old, int(existing["id"]))
        outcome.matched += 1
        return
    deleted = _deleted_on_site(rc, old, values, same_site, localhost)
    if deleted is not None:  # never created again: the site deleted that person
        rc.ids.set("user", old, deleted)
        rc.later.setdefault(DELETED_USERS, []).append(deleted)  # given no role (roles.xml)
        outcome.matched += 1
        return
    if existing is not None:
        values["username"] = _free_username(rc, str(values.get("username")), localhost)
        outcome.renamed.append(f"{existing['username']} -> {values['username']}")
        rc.warnings.append(
            f"user {existing['username']} of the backup is not this site's "
            f"{existing['username']}: created as {values['username']}")
    new_id, ctx_id = _create_user(rc, el, values, localhost, now)
    rc.ids.set("user", old, new_id)
    if el.get("contextid"):
        outcome.contexts[str(el.get("contextid"))] = ctx_id
    outcome.created += 1


def _values(el: ET.Element) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for child in el:
        if child.tag in _SKIP and child.tag != "mnethosturl":
            continue
        text = child.text or ""
        values[child.tag] = None if text == NULL else text
    return values


def _same_user(row: dict[str, Any], old: str, values: dict[str, str | None],
               same_site: bool) -> bool:
    if same_site:
        return str(row["id"]) == old
    email = values.get("email")
    # precheck_user 2A1: UPPER(email) = UPPER(?), so "Ann@Example.com" is ann@example.com
    if email and str(row.get("email") or "").upper() == email.upper():
        return True
    first = str(values.get("firstaccess") or "0")
    return first != "0" and str(row.get("firstaccess") or "0") == first


# rc.later's list of the site's deleted users the backup's were mapped to:
# Moodle assigns them no role (restore_ras_and_caps_structure_step)
DELETED_USERS = "deleted_users"


def is_deleted_user(rc: RestoreContext, userid: Any) -> bool:
    return bool(userid) and int(userid) in rc.later.get(DELETED_USERS, ())


def _deleted_on_site(rc: RestoreContext, old: str, values: dict[str, str | None],
                     same_site: bool, localhost: int) -> int | None:
    """The site's deleted account of the backup's user, if it has one
    (precheck_user 1B, 2B1, 2B2): Moodle's delete_user() keeps the row,
    ``deleted`` 1, its username ``<email>.<time>`` and often its email
    ``md5(username)``.  A restore maps the user to it rather than create the
    deleted person's account again, with their name and address."""
    email = values.get("email") or ""
    digest = hashlib.md5(str(values.get("username") or "").encode()).hexdigest()
    first = str(values.get("firstaccess") or "0")

    def deleted_row(row: dict[str, Any]) -> bool:
        # delete_user() lower-cases the email it names the row by, and
        # precheck_user compares UPPER(username) LIKE UPPER('<email[:89]>.%')
        named = bool(email) and str(row.get("username") or "").lower().startswith(
            email[:89].lower() + ".")
        hashed = str(row.get("email") or "") == digest
        if same_site:  # 1B
            return named or hashed
        seen = first != "0" and str(row.get("firstaccess") or "0") == first
        return (hashed and (named or seen)) or (named and seen)  # 2B1, 2B2

    if same_site:
        row = rc.writer.one("user", {"id": old, "mnethostid": localhost, "deleted": 1})
        return int(row["id"]) if row is not None and deleted_row(row) else None
    # 2B1 by the md5 kept as email; 2B2 (no md5 kept) by first access
    lookups = [("email", digest)] + ([("firstaccess", first)] if email and first != "0" else [])
    for column, value in lookups:
        for row in rc.writer.rows_in("user", column, [value],
                                     {"mnethostid": localhost, "deleted": 1},
                                     columns=("id", "username", "email", "firstaccess")):
            if deleted_row(row):
                return int(row["id"])
    return None


def _local_host(rc: RestoreContext) -> int:
    row = rc.writer.one("config", {"name": "mnet_localhost_id"})
    return int(row["value"]) if row is not None and row.get("value") else 1


def _free_username(rc: RestoreContext, username: str, host: int) -> str:
    suffix = 1
    while True:
        candidate = f"{username}.restored" + ("" if suffix == 1 else str(suffix))
        if rc.writer.one("user", {"username": candidate, "mnethostid": host}) is None:
            return candidate
        suffix += 1


def _create_user(rc: RestoreContext, el: ET.Element, values: dict[str, str | None],
                 host: int, now: int) -> tuple[int, int]:
    row: dict[str, Any] = {k: v for k, v in values.items() if k != "mnethosturl"}
    row.update(mnethostid=host, timecreated=row.get("timecreated") or now,
               password="restored")
    new_id = rc.writer.insert("user", row)
    ctx_id = rc.writer.insert("context", {"contextlevel": CONTEXT_USER, "instanceid": new_id,
                                          "depth": 2, "path": None})
    rc.writer.update("context", ctx_id, {"path": f"/1/{ctx_id}"})
    for pref in el.iterfind("preferences/preference"):
        rc.writer.insert("user_preferences", {
            "userid": new_id, "name": pref.findtext("name") or "",
            "value": pref.findtext("value") or ""})
    return new_id, ctx_id
