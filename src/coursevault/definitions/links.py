"""Link encoders: absolute links into the course become markers restore
rewrites (``$@FORUMVIEWBYID*12@$``), as each task's ``encode_content_links``
does.  Most modules encode the same two links; they share this."""

from __future__ import annotations

import re

from coursevault.structure.registry import LinkContext


def encode_module_links(
    content: str, link: LinkContext, module: str, *, index: str, view: str
) -> str:
    """``/mod/M/index.php?id=N`` → ``$@INDEX*N@$``, ``/mod/M/view.php?id=N`` → ``$@VIEW*N@$``."""
    base = re.escape(link.wwwroot)
    content = re.sub(
        rf"({base}/mod/{module}/index\.php\?id=)([0-9]+)", rf"$@{index}*\2@$", content
    )
    return re.sub(rf"({base}/mod/{module}/view\.php\?id=)([0-9]+)", rf"$@{view}*\2@$", content)



def encode_patterns(
    content: str, link: LinkContext, patterns: tuple[tuple[str, str], ...]
) -> str:
    """Each ``(pattern after the site's address, marker)`` in turn, as a
    task's ``encode_content_links`` runs its ``preg_replace`` calls."""
    base = re.escape(link.wwwroot)
    for pattern, marker in patterns:
        content = re.sub(base + pattern, marker, content)
    return content

_FP_CHAR = r"(?:[-;:@#&=0-9$~_.+!*',]|[^\W\d_])"
_FP_QCHAR = r"(?:[-;:@#&=?0-9$~_.+!*',]|[^\W\d_])"
_FILEPHP = re.compile(
    r"(\$@FILEPHP@\$)"
    rf"((?:/|%2f|%2F)(?:\({_FP_CHAR}*?\)|{_FP_CHAR}|%[a-fA-F0-9]{{2}}|/)*)?"
    rf"(\?(?:\({_FP_CHAR}*?\)|{_FP_QCHAR}|%[a-fA-F0-9]{{2}}|/)*)?"
    r"(?<![,.;])"
)
_FP_SEARCH = (("/", "$@SLASH@$"), ("%2f", "$@SLASH@$"), ("%2F", "$@SLASH@$"),
              ("?forcedownload=1", "$@FORCEDOWNLOAD@$"), ("&forcedownload=1", "$@FORCEDOWNLOAD@$"),
              ("&amp;forcedownload=1", "$@FORCEDOWNLOAD@$"))


def encode_filephp_links(content: str, link: LinkContext) -> str:
    """Legacy ``file.php`` links into the course become ``$@FILEPHP@$``
    markers with neutral slashes (``process_filephp_links``, MDL-18799)."""
    if "file.php" not in content:
        return content
    for form in ("/file.php/", "/file.php?file=/", "/file.php?file=%2f", "/file.php?file=%2F"):
        content = content.replace(link.wwwroot + form + link.courseid, "$@FILEPHP@$")

    def neutral(m: re.Match[str]) -> str:
        parts = [m.group(2) or "", m.group(3) or ""]
        for search, replace in _FP_SEARCH:
            parts = [p.replace(search, replace) for p in parts]
        return m.group(1) + parts[0] + parts[1]

    return _FILEPHP.sub(neutral, content)
