"""Anonymising a Moodle 2 backup's members, for ``export --anonymize``.

Moodle's backup anonymises only ``users.xml``: ``backup_anonymizer_helper``
replaces each user's identity and contact fields (``anon<N>`` where N counts
the users in the order they are written) and the user's custom fields,
tags, preferences and role overrides/assignments are left out.  An export
handed to someone else must leak less than that, so this module also

* replaces every user's e-mail address and full name wherever it stands in
  the text of any XML member (a file's ``author`` in files.xml, a name typed
  into a forum post) by that user's pseudonym, so one person has one
  pseudonym across all members (the ids, which the members share, stay);
* replaces a user's username in any ``<username>`` element by the
  pseudonym's (only there: a username such as ``student`` is also a role's
  shortname, which must stay);
* replaces every non-null ``<ip>`` and ``<lastip>`` (logs, users) by
  ``127.0.0.1``, as the helper does for ``lastip``;
* leaves out the users' profile pictures (``user`` component files of the
  ``icon`` and ``profile`` areas), which Moodle's anonymised backup does not
  annotate, with their contents when no other file uses them;
* marks the backup anonymised in ``moodle_backup.xml`` (the root
  ``anonymize`` setting, and ``-an`` at the end of its name), as Moodle's
  own anonymised backup is.

Names are matched as whole words in element text only, never inside tags
or attribute values, so a surname that is also an element name cannot
break the XML.  Single first or last names on their own are not replaced:
"Will" or "Rose" in a course's text is more often a word than a person.

The format layer only: members in, members out, nothing of storage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

NULL = "$@NULL@$"
LOCALHOST = "127.0.0.1"


def escape(text: str, entities: Mapping[str, str] | None = None) -> str:
    """``xml.sax.saxutils.escape``, written out: that module imports
    urllib.request (http, ssl, email), 0.014 s of every backup's start-up
    for three ``replace`` calls.  Same order: ``&`` first, then ``>``,
    ``<``, then ``entities`` in their order."""
    text = text.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")
    for old, new in (entities or {}).items():
        text = text.replace(old, new)
    return text
USER_FIELDS = (
    "username", "idnumber", "email", "phone1", "phone2", "institution", "department",
    "address", "city", "country", "lastip", "picture", "description", "descriptionformat",
    "imagealt", "auth", "firstnamephonetic", "lastnamephonetic", "middlename",
    "alternatename", "firstname", "lastname",
)
# containers of a user that Moodle's anonymised backup writes empty
_EMPTIED = ("custom_fields", "tags", "preferences", "role_overrides", "role_assignments")
_USER = re.compile(rb'(?s)(<user id="[^"]*"[^>]*>)(.*?)(</user>)')
_FIELD = re.compile(r"<(\w+)>([^<]*)</\1>")
_TEXT = re.compile(r">([^<]+)<")
_IP = re.compile(r"<(ip|lastip)>([^<]*)</\1>")
_USERNAME = re.compile(r"<username>([^<]*)</username>")
_FILE = re.compile(r"(?s)\n?[ \t]*<file id=\"[^\"]*\">.*?</file>")
_BACKUP_NAME = re.compile(
    r"((?:<information>\s*<name>|<name>filename</name>\s*<value>)backup-moodle2-[^<]*?)"
    r"(?<!-an)(?<!-nu)\.mbz(<)")
_ANON_SETTING = re.compile(r"(<name>anonymize</name>\s*<value>)0(</value>)")


def anonymized(row: Mapping[str, object], counter: int) -> dict[str, str]:
    """``anonymizer_final_element``: what ``backup_anonymizer_helper`` gives
    for a user, whose numbering is a counter per field (the user's rank in
    users.xml), not the user id."""
    n = str(counter)
    return {
        "username": "anon" + n, "idnumber": "", "email": f"anon{n}@doesntexist.invalid",
        "phone1": "", "phone2": "", "institution": "", "department": "", "address": "",
        "city": "Perth", "country": "AU", "lastip": LOCALHOST, "picture": "0",
        "description": "", "descriptionformat": "0", "imagealt": "", "auth": "manual",
        "firstname": "anonfirstname" + n, "lastname": "anonlastname" + n,
        "firstnamephonetic": "anonfirstnamephonetic" + n,
        "lastnamephonetic": "anonlastnamephonetic" + n,
        "middlename": "anonmiddlename" + n, "alternatename": "anonalternatename" + n,
    }


def _unescape(text: str) -> str:
    return (text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
            .replace("&#039;", "'").replace("&apos;", "'").replace("&amp;", "&"))


def _escapes(text: str) -> set[str]:
    """The forms ``text`` can take inside a Moodle XML member: as is, as
    Moodle's writer escapes it (htmlspecialchars), and escaped once more
    (HTML held in a text field is escaped again by the writer)."""
    once = escape(text, {'"': "&quot;", "'": "&#039;"})
    return {text, once, escape(once), escape(text, {"'": "&apos;"})}


class Anonymizer:
    """The pseudonyms of one backup's users, applied to each of its members."""

    def __init__(self, users_xml: bytes | None) -> None:
        self.left_out: set[str] = set()  # members not written (set by the export)
        self.users: list[dict[str, str]] = []
        for block in _USER.finditer(users_xml or b""):
            text = block.group(2).decode("utf-8")
            fields = {m.group(1): _unescape(m.group(2)) for m in _FIELD.finditer(text)}
            self.users.append(fields)
        self._words: dict[str, str] = {}
        self._usernames: dict[str, str] = {}
        for rank, user in enumerate(self.users, 1):
            fake = anonymized(user, rank)
            for real, pseudo in _identities(user, fake):
                for form in _escapes(real):
                    self._words.setdefault(form, escape(pseudo))
            name = user.get("username", "")
            if name and name != NULL:
                for form in _escapes(name):
                    self._usernames.setdefault(form, fake["username"])
        # longest first: a full name with its middle name before without
        alternatives = sorted(self._words, key=len, reverse=True)
        self._pattern = (re.compile(
            r"(?<!\w)(" + "|".join(map(re.escape, alternatives)) + r")(?!\w)")
            if alternatives else None)

    def member(self, path: str, data: bytes) -> bytes:
        """``data`` as the anonymised export writes member ``path``."""
        if not path.endswith(".xml"):
            return data
        text = data.decode("utf-8")
        if path == "users.xml":
            text = self._users(data).decode("utf-8")
        elif path == "moodle_backup.xml":
            text = _ANON_SETTING.sub(r"\g<1>1\g<2>", text)
            # get_default_backup_filename: "-an" for an anonymised backup
            text = _BACKUP_NAME.sub(r"\g<1>-an.mbz\g<2>", text)
        elif path == "files.xml":
            text = _FILE.sub(lambda m: "" if _is_user_picture(m.group(0)) else m.group(0), text)
        text = _IP.sub(lambda m: m.group(0) if m.group(2) == NULL
                       else f"<{m.group(1)}>{LOCALHOST}</{m.group(1)}>", text)
        if self._usernames:
            text = _USERNAME.sub(lambda m: "<username>" + self._usernames.get(
                m.group(1), m.group(1)) + "</username>", text)
        if self._pattern is not None:
            text = _TEXT.sub(self._text, text)
        return text.encode("utf-8")

    def _text(self, match: re.Match[str]) -> str:
        assert self._pattern is not None
        value = self._pattern.sub(lambda m: self._words[m.group(1)], match.group(1))
        return ">" + value + "<"

    def _users(self, data: bytes) -> bytes:
        rank = 0

        def one(block: re.Match[bytes]) -> bytes:
            nonlocal rank
            rank += 1
            fake = anonymized({}, rank)
            body = block.group(2).decode("utf-8")
            body = _FIELD.sub(lambda m: f"<{m.group(1)}>{escape(fake[m.group(1)])}</{m.group(1)}>"
                              if m.group(1) in fake else m.group(0), body)
            body = re.sub(r"<password>[^<]*</password>", "<password></password>", body)
            for name in _EMPTIED:
                body = re.sub(rf"(?s)(<{name}>).*?(\n[ \t]*</{name}>)", r"\1\2", body)
            return block.group(1) + body.encode("utf-8") + block.group(3)

        return _USER.sub(one, data)

    def dropped_contents(self, files_xml: bytes | None) -> set[str]:
        """Content hashes only the left-out profile pictures used: their
        ``files/`` members go too."""
        text = (files_xml or b"").decode("utf-8")
        dropped: set[str] = set()
        kept: set[str] = set()
        for m in _FILE.finditer(text):
            found = re.search(r"<contenthash>([0-9a-f]+)</contenthash>", m.group(0))
            if found is None:
                continue
            (dropped if _is_user_picture(m.group(0)) else kept).add(found.group(1))
        return dropped - kept


def _is_user_picture(entry: str) -> bool:
    return ("<component>user</component>" in entry
            and re.search(r"<filearea>(icon|profile)</filearea>", entry) is not None)


def _identities(user: dict[str, str], fake: dict[str, str]) -> list[tuple[str, str]]:
    """(real, pseudonym) pairs replaced in free text: e-mail and full names."""
    first, last = user.get("firstname", ""), user.get("lastname", "")
    middle = user.get("middlename", "")
    pfirst, plast = fake["firstname"], fake["lastname"]
    pairs = []
    email = user.get("email", "")
    if email and email != NULL and "@" in email:
        pairs.append((email, fake["email"]))
    if first and last and NULL not in (first, last):
        pairs += [(f"{first} {last}", f"{pfirst} {plast}"),
                  (f"{last} {first}", f"{plast} {pfirst}"),
                  (f"{last}, {first}", f"{plast}, {pfirst}")]
        if middle and middle != NULL:
            pairs.append((f"{first} {middle} {last}", f"{pfirst} {fake['middlename']} {plast}"))
    return pairs

