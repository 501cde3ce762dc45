"""What an export may be asked for (formats, compression level), apart from
the export itself: the API and the CLI check them, and show the defaults,
without importing the archive writers (a command that exports nothing
should not pay for them at start-up)."""

from __future__ import annotations

from coursevault.errors import BadInputError

FORMATS = ("tgz", "zip")
# zlib-ng's level 3: archives 4 % larger than Moodle's level 6 for 60 % of
# its deflate time (the 100 MB course's tar: 20.0 against 19.2 MB, 0.56
# against 0.94 s), which took export on one core from 51 to 66 MB/s.
DEFAULT_LEVEL = 3


def validate_level(level: int) -> None:
    if not 0 <= level <= 9:
        raise BadInputError(f"compression level {level} is out of range: use 0-9")
