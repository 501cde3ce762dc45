"""PHP's ``preg_replace`` for link encoders that must match Moodle's exactly.

Each activity's ``encode_content_links`` is a handful of ``preg_replace``
calls whose patterns are not all careful: most leave the dot of
``index.php`` unescaped (so it matches any character), and mod_url's
replacements name a group its pattern does not have in some versions.
Encoders here keep Moodle's patterns as written and substitute
replacements the way PHP does (``$n``, ``${n}`` and ``\\n`` name group n; a
group that does not exist or did not take part becomes the empty string),
so that what they encode is what Moodle encodes, quirks included.

PHP runs these patterns without the ``u`` flag, on bytes; Python runs them
on characters.  The two differ only where an unescaped ``.`` meets a
multi-byte character in a URL, which a real link cannot contain.
"""

from __future__ import annotations

import re
from functools import cache

from coursevault.structure.registry import LinkContext

_REFERENCE = re.compile(r"\$(\d{1,2})|\$\{(\d{1,2})\}|\\(\d{1,2})")


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def preg_replace(pattern: str, replacement: str, content: str) -> str:
    """``preg_replace($pattern, $replacement, $content)`` with ``pattern``
    written as a Python regex (no delimiters)."""
    compiled = _compiled(pattern)

    def substitute(match: re.Match[str]) -> str:
        def group(ref: re.Match[str]) -> str:
            number = int(next(g for g in ref.groups() if g is not None))
            if number > compiled.groups:
                return ""
            return match.group(number) or ""

        return _REFERENCE.sub(group, replacement)

    return compiled.sub(substitute, content)


def quoted_root(link: LinkContext) -> str:
    """``preg_quote($CFG->wwwroot, '/')``: the site address as a literal."""
    return re.escape(link.wwwroot)
