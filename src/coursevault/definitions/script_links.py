"""Link encoders written as their PHP regexes are, for modules whose
``encode_content_links`` goes beyond the index/view pair (lesson, data,
wiki, feedback) or must keep PHP's unescaped dots (``index.php`` in a PHP
pattern matches ``indexXphp`` too).

Each rule is the part of the PHP pattern after ``preg_quote($CFG->wwwroot)``
and the replacement with PHP's ``$n`` written as Python's ``\\g<n>``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote_plus

from coursevault.structure.registry import LinkContext


def encode_script_links(
    content: str, link: LinkContext, rules: Sequence[tuple[str, str]]
) -> str:
    """Apply ``preg_replace('/(' . $base . TAIL)/', REPLACEMENT)`` rules in order."""
    base = re.escape(link.wwwroot)
    for tail, replacement in rules:
        content = re.sub(base + tail, replacement, content)
    return content


def php_urlencode(text: str) -> str:
    """PHP's ``urlencode``: like ``quote_plus`` but ``~`` is encoded too."""
    return quote_plus(text, safe="").replace("~", "%7E")


def index_view_rules(module: str, index: str, view: str) -> list[tuple[str, str]]:
    """The two rules nearly every module has, exactly as PHP writes them
    (``/(BASE\\/mod\\/M\\/index.php\\?id\\=)([0-9]+)/``)."""
    return [
        (rf"(/mod/{module}/index.php\?id=)([0-9]+)", rf"$@{index}*\g<2>@$"),
        (rf"(/mod/{module}/view.php\?id=)([0-9]+)", rf"$@{view}*\g<2>@$"),
    ]
