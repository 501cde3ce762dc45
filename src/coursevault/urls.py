"""Database URLs as messages show them, and the one form of them refused.

A catalog or site URL carries its password (``postgresql://u:secret@host/db``),
and an error naming the database must not print it.  SQLAlchemy's own
``hide_password`` works on what it parsed, and it parses an unencoded ``@``
in a password as the end of the password: ``u:se@cret@host`` became the
password ``se`` on the host ``cret@host``, which the driver's "cannot
resolve host" message then printed.  So the password is hidden here from the
text itself, and a URL with more than one ``@`` before its host is refused
before any driver sees it.
"""

from __future__ import annotations

import re


def _authority(url: str) -> tuple[str, str, str] | None:
    """(scheme and ``://``, credentials, ``@`` and the rest) of a URL with
    credentials; None for one without."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    head = rest.split("?", 1)[0]  # a query may hold '@' of its own
    at = head.rfind("@")
    if at < 0:
        return None
    return scheme + sep, rest[:at], rest[at:]


def shown_url(url: str) -> str:
    """``url`` with its password, whatever characters it holds, as ``***``."""
    parts = _authority(url)
    if parts is None:
        return _query_password_hidden(url)
    start, credentials, rest = parts
    user, colon, _password = credentials.partition(":")
    return _query_password_hidden(f"{start}{user}:***{rest}" if colon else url)


def _query_password_hidden(url: str) -> str:
    """``url`` with a ``password=`` query parameter (which SQLAlchemy and
    the drivers also take) as ``***``."""
    return _QUERY_PASSWORD.sub(r"\1***", url)


_QUERY_PASSWORD = re.compile(r"([?&](?:password|passwd)=)[^&#]*", re.IGNORECASE)


def unencoded_at(url: str) -> bool:
    """Whether the user name or password of ``url`` holds a bare ``@``, which
    URL parsers read as the end of the credentials (``%40`` is the way to
    write one)."""
    parts = _authority(url)
    return parts is not None and "@" in parts[1]


def refuse_unencoded_at(url: str) -> str | None:
    """The message refusing ``url`` if its credentials hold a bare ``@``, or
    if it is not UTF-8 text (bytes a shell passed on: an internal
    UnicodeEncodeError when the driver took it)."""
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        return "database URL is not UTF-8 text: write such bytes %-encoded"
    if not unencoded_at(url):
        return None
    return (f"database URL {shown_url(url)}: its user name or password holds '@'; "
            "write it as %40")
