"""A Moodle site's database (SQLAlchemy Core) and file store: reading one, and
making demo ones with Moodle 4.5's schema."""

from __future__ import annotations

import re

from coursevault.errors import UsageError

_PREFIX = re.compile(r"[A-Za-z0-9_]+")


def check_prefix(prefix: str) -> None:
    """UsageError for a table prefix that cannot be one: the prefix is part
    of every table name the commands put into SQL, so ``--prefix 'x;drop'``
    was sent to the server as written (and ``--prefix ''`` read tables named
    ``config``, ``user``).  Kept free of SQLAlchemy: every command's
    start-up imports this package."""
    if not _PREFIX.fullmatch(prefix):
        raise UsageError(f"--prefix {prefix!r}: a table prefix is letters, digits and '_' "
                         "(Moodle's default: mdl_)")
