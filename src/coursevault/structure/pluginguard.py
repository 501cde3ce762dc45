"""A third-party plugin's mistakes, named as the plugin's.

coursevault's own definitions are its code: what goes wrong in them is an
internal error.  Another package's (an entry point whose module is not
coursevault's) is input like an archive: an adversarial pass found one
that failed to import stopping every database backup of the site with
"internal error: ModuleNotFoundError", and one whose build raised ending
a site's night at that course without naming the plugin.  Such a failure
is now a :class:`PluginError` naming the plugin and its entry point: the
course that needs the plugin fails (exit 2), the others go on.

What a guarded plugin hands over is wrapped where it is called later:
its ``steps``, each step's ``build`` and ``write``, its link encoder, the
functions in its ``extra`` (a subplugin's part of its owner's tree), and
in each tree it builds the Python rows (``Rows``) and computed fields.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from coursevault.errors import BadInputError, CoursevaultError

OWN = "coursevault."

F = TypeVar("F", bound=Callable[..., Any])


class PluginError(BadInputError):
    """A third-party plugin failed: its entry point could not be loaded, is
    not a plugin, or its code raised."""


def guarded(plugin: Any, who: str) -> Any:
    """``plugin`` with every callable it hands over wrapped (see the module
    docstring); PluginError if it is not a plugin at all."""
    from coursevault.structure.registry import Plugin

    if not isinstance(plugin, Plugin):
        raise PluginError(f"{who}: is not a coursevault Plugin ({type(plugin).__name__})")
    encode = plugin.encode_links
    return replace(
        plugin,
        steps=_steps(plugin.steps, who),
        encode_links=None if encode is None else _wrap(encode, who, "its link encoder"),
        # what its owner asks of it (a subplugin's part of the owner's tree)
        extra={k: _build(v, who, f"its {k}") if callable(v) else v
               for k, v in plugin.extra.items()},
    )


def _steps(steps: Callable[..., Any], who: str) -> Callable[..., Any]:
    @functools.wraps(steps)
    def wrapped(ctx: Any) -> list[Any]:
        made = _call(steps, who, "its steps", ctx)
        out, seen = [], set()
        for step in made:
            member = getattr(step, "member", None)
            if not isinstance(member, str) or not safe_member(member):
                raise PluginError(f"{who}: writes a member named {member!r}, not a plain "
                                  "relative path")
            if member in seen:
                raise PluginError(f"{who}: writes {member} twice")
            seen.add(member)
            out.append(replace(
                step,
                build=None if step.build is None else _build(step.build, who, member),
                write=None if step.write is None else _wrap(step.write, who, member),
            ))
        return out

    return wrapped


def _build(build: Callable[..., Any], who: str, member: str) -> Callable[..., Any]:
    from coursevault.structure.elements import Nested

    def wrapped(*args: Any) -> Any:
        root = _call(build, who, member, *args)
        if isinstance(root, Nested):
            _guard_tree(root, who, member)
        return root

    return wrapped


def _guard_tree(root: Any, who: str, member: str) -> None:
    """The Python in a built tree -- computed fields, ``Rows`` sources --
    wrapped in place (the tree was just built for this task)."""
    from coursevault.structure.elements import Rows

    stack = [root]
    while stack:
        element = stack.pop()
        stack.extend(element.children)
        where = f"{member} <{element.name}>"
        if element.compute:
            element.compute = {k: _wrap(fn, who, where) for k, fn in element.compute.items()}
        if isinstance(element.source, Rows):
            element.source = Rows(_wrap(element.source.fn, who, where))


def _wrap(fn: F, who: str, where: str) -> F:
    if getattr(fn, "_cv_guarded", False):  # a tree the plugin keeps and hands out again
        return fn

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return _call(fn, who, where, *args, **kwargs)

    wrapped._cv_guarded = True  # type: ignore[attr-defined]
    return wrapped  # type: ignore[return-value]


def _call(fn: Callable[..., Any], who: str, where: str, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except CoursevaultError:
        raise  # the site's or the store's, said as they are
    except Exception as exc:  # the plugin's own mistake
        raise PluginError(f"{who}: {where} failed: {type(exc).__name__}: {exc}") from exc


def safe_member(member: str) -> bool:
    """A member path a plugin may name: relative, no ``..``, no empty part."""
    parts = member.split("/")
    return bool(member) and not member.startswith("/") and all(
        p not in ("", ".", "..") for p in parts) and "\\" not in member
