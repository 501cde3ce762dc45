"""Masking exactly what Moodle's restore changes in a member, for comparing a
backup of a restored site with a backup of its source (``modulo.py``).

Masked, each to a placeholder, and nothing else (the rules and their
evidence are in ``restorerules.py``):

- ids: every attribute and element Moodle names as an id (``id``,
  ``...id``, ``...ids``: ``ID_NAME``) and the ids by another name
  (``ID_VALUED``, found from the real differences); only the integers are
  masked, so ``$@NULL@$``, an empty value, a separator or the number of ids
  in a list still count;
- ids inside text: encoded links (``$@FORUMVIEWBYID*200@$``), backup folder
  names in moodle_backup.xml (``forum_200``) and availability conditions
  (``"cm":200``) keep all but their ids;
- the timestamps Moodle's restore sets from its clock (``RESTAMPED``: the
  site README's list, each narrowed to the records it names);
- values a restore rewrites (``RESTORED_AS``, or the comparison's own
  ``Exceptions.restored_as``): Moodle's value is replaced by what the
  restore made of it, so ours must then be exactly that.

Text, names, formats, grades, sort orders and every other number stay as
they are: that is what the comparison is for.  Children Moodle's restore
reorders (``UNORDERED``) are compared as multisets of their masked bytes.
Each masked id is remembered with its kind, so ``renumbering.py`` can check
the ids were renumbered one to one.
"""

from __future__ import annotations

import fnmatch
import html
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .mbzxml import Mask, _Open, apply_masks, walk, xml_masks
from .restorerules import (
    ID_VALUED,
    NEGATIVE_ID_VALUED,
    POSITIVE_ID_VALUED,
    REGENERATED,
    RESTAMPED,
    SITE_USERS,
    UNORDERED,
    At,
    Exceptions,
    at,
)

ID = b"#"
TIME = b"[restore time]"
_INTEGER = re.compile(rb"-?\d+")
ID_NAME = re.compile(rb"^(?:[a-z_0-9]*id|[a-z_0-9]+ids)$")
_LINK = re.compile(rb"\$@[A-Z]+\*[\d*]+@\$")
_FOLDER_NAME = re.compile(rb"(?<![a-z0-9])[a-z0-9]+_(\d+)(?![0-9])")
_MANIFEST_NAMES = frozenset({b"name", b"activity", b"section", b"directory"})


@dataclass(frozen=True)
class IdMask(Mask):
    """A masked id, with what it was and which kind of id it is (its
    element's or attribute's name): a restore renumbers each kind
    consistently, which ``renumbering.py`` checks."""

    kind: bytes = b""
    value: bytes = b""


def _integers(data: bytes, start: int, end: int, replacement: bytes = ID) -> Iterator[Mask]:
    for m in _INTEGER.finditer(data, start, end):
        yield Mask(m.start(), m.end(), replacement)


# Leaf names whose ids belong to another table under each parent: their
# kind is qualified by the parent (inforef's <user><id>, <file><id>...).
_AMBIGUOUS = frozenset({b"id", b"itemid", b"instanceid", b"item", b"parent"})


def _id_kind(stack: list[_Open]) -> bytes:
    """Which kind of id a leaf holds: its name (``userid`` is a user's
    wherever it is), qualified by its parent's for an ambiguous name."""
    name = stack[-1].name
    if name in _AMBIGUOUS and len(stack) > 1:
        return stack[-2].name + b"/" + name
    return name


def _ids(data: bytes, start: int, end: int, kind: bytes) -> Iterator[Mask]:
    """The ids in data[start:end], masked, each remembered as a ``kind``."""
    for m in _INTEGER.finditer(data, start, end):
        yield IdMask(m.start(), m.end(), ID, kind, m.group(0))


def _mask_condition_ids(tree: Any) -> Any:
    """An availability tree with the ids of its conditions masked: ``cm``
    (a course module) and ``id`` (a grade item, group or grouping)."""
    if isinstance(tree, list):
        return [_mask_condition_ids(x) for x in tree]
    if isinstance(tree, dict):
        return {k: "#" if k in ("cm", "id") else _mask_condition_ids(v) for k, v in tree.items()}
    return tree


def _availability(text: bytes) -> bytes | None:
    """An availability JSON with condition ids masked and keys sorted: the
    restore maps the ids and json_encodes the tree again, which moves
    ``showc`` before ``c`` (mdl_course_sections.availability on MariaDB).
    None when it is not JSON (then it is compared as it is)."""
    try:
        tree = json.loads(html.unescape(text.decode()))
    except (UnicodeDecodeError, ValueError):
        return None
    return json.dumps(_mask_condition_ids(tree), sort_keys=True).encode()


def _legacy_filter(tree: dict[str, Any]) -> dict[str, Any]:
    """A pre-4.3 random-question filter condition as Moodle 4.5's restore
    rewrites it (mdl_question_set_references: 6 legacy rows on PostgreSQL,
    every row in this shape on MariaDB): a category filter, a tag filter
    from the tag names ("id,name": their ids are the restore's), the
    question bank's view settings."""
    category = tree["questioncategoryid"]
    filters: dict[str, Any] = {
        "category": {
            "jointype": 1,
            "values": [int(category)],
            "filteroptions": {"includesubcategories": tree.get("includingsubcategories")},
        }
    }
    if "tags" in tree:
        filters["qtagids"] = {"jointype": 2, "values": [t.split(",")[0] for t in tree["tags"]]}
    return {
        "filter": filters,
        "cat": f"{category},0",
        "tabname": "questions",
        "qpage": 0,
        "qperpage": 100,
        "jointype": 2,
    }


def _filter_ids_masked(tree: dict[str, Any]) -> dict[str, Any]:
    """A filter condition with its ids masked: categories, tags, and the
    category and context of ``cat``."""
    for condition in tree.get("filter", {}).values():
        if isinstance(condition, dict) and "values" in condition:
            condition["values"] = ["#" for _ in condition["values"]]
    if "cat" in tree:
        tree["cat"] = re.sub(r"\d+", "#", str(tree["cat"]))
    return tree


def _filtercondition(text: bytes, theirs: bool) -> bytes | None:
    """A quiz's random-question filter condition, ids masked, and Moodle's
    legacy one as the restore rewrites it; key order kept.  None when it is
    not JSON (then it is compared as it is)."""
    try:
        tree = json.loads(html.unescape(text.decode()))
    except (UnicodeDecodeError, ValueError):
        return None
    if theirs and isinstance(tree, dict) and "questioncategoryid" in tree:
        tree = _legacy_filter(tree)
    if not isinstance(tree, dict):
        return None
    return json.dumps(_filter_ids_masked(tree), separators=(",", ":")).encode()


def _json_leaf(name: bytes, text: bytes, theirs: bool) -> bytes | None:
    """A JSON value that holds ids, canonical with the ids masked."""
    if name in (b"availability", b"availabilityjson"):
        return _availability(text)
    if name == b"filtercondition":
        return _filtercondition(text, theirs)
    return None


# A question attempt step's response variables that hold ids: the choice
# order of multichoice (answer ids) and match (subquestion ids), which the
# qtypes' restore recodes (recode_response); other variables are data
# (gapselect's _choiceorderN is a permutation of choice numbers).
ORDER_OF_IDS = frozenset({b"_order", b"_stemorder", b"_choiceorder"})
_RESPONSE_VARIABLE = (at("*", "variable", "name"), at("*", "variable", "value"))


def _response_variable(stack: list[_Open], data: bytes, start: int, end: int) -> Iterator[Mask]:
    variable = stack[-2]
    if stack[-1].name == b"name":
        variable.setting_name = data[start:end]
    elif variable.setting_name in ORDER_OF_IDS:
        yield from _ids(data, start, end, b"response " + variable.setting_name)


def _restored_as(
    member: str, stack: list[_Open], text: bytes, attr: bytes | None, exc: Exceptions
) -> bytes | None:
    for rule in exc.restored_as:
        applies = rule.at.attr == attr and rule.at.matches(member, stack)
        if applies and re.fullmatch(rule.theirs, text, re.S):
            return rule.ours
    return None


def _matches(rules: tuple[At, ...], member: str, stack: list[_Open]) -> bool:
    return any(a.matches(member, stack) for a in rules)


def _named_ids(data: bytes, start: int, end: int) -> Iterator[Mask]:
    """The ids of ``<word>_<id>`` names (``forum_200_included``)."""
    for m in _FOLDER_NAME.finditer(data, start, end):
        word = m.group(0).rsplit(b"_", 1)[0]
        yield IdMask(m.start(1), m.end(1), ID, b"folder " + word, m.group(1))


def _badge_parameter(stack: list[_Open], data: bytes, start: int, end: int) -> Iterator[Mask]:
    """A badge criterion's parameter: its name holds an id (``module_214``),
    and its value is that id again (the course module, role...)."""
    parameter = stack[-2]
    if stack[-1].name == b"name":
        parameter.setting_name = data[start:end]
        yield from _named_ids(data, start, end)
    elif parameter.setting_name and parameter.setting_name.endswith(b"_" + data[start:end]):
        yield from _integers(data, start, end)


# An activity's calendar event names the activity's row by ``modulename``
# and ``instance``: the restore gives it the restored row's id
# (restore_calendarevents_structure_step), so its kind is that row's, the
# ``<activity id>`` of the module's member (``activities/quiz/quiz.xml``):
# qualified here already, it is renumbered as that row is (renumbering.py).
_EVENT_FIELD = (
    at("activities/*/calendar.xml", "event", "modulename"),
    at("activities/*/calendar.xml", "event", "instance"),
)


def _event_instance(stack: list[_Open], data: bytes, start: int, end: int) -> Iterator[Mask]:
    event = stack[-2]
    if stack[-1].name == b"modulename":
        event.setting_name = data[start:end]
    elif event.setting_name:
        module = event.setting_name
        kind = b"activities/%s/%s.xml:activity@id" % (module, module)
        yield from _ids(data, start, end, kind)


_USER_FIELD = (at("users.xml", "user", "username"), at("users.xml", "user", "timemodified"))


def _site_user(stack: list[_Open], data: bytes, start: int, end: int) -> Iterator[Mask]:
    user = stack[-2]
    if stack[-1].name == b"username":
        user.setting_name = data[start:end]
    elif user.setting_name in SITE_USERS:
        yield Mask(start, end, b"[site install time]")


def _holds_ids(member: str, stack: list[_Open], text: bytes) -> bool:
    """Whether a leaf's integers are ids: by Moodle's naming, as an id by
    another name, or as a positive value of an id-or-constant field."""
    if ID_NAME.match(stack[-1].name) or _matches(ID_VALUED, member, stack):
        return True
    positive = text.isdigit() and text != b"0"
    return positive and _matches(POSITIVE_ID_VALUED, member, stack)


def _leaf_masks(
    member: str, stack: list[_Open], data: bytes, end: int, theirs: bool, exc: Exceptions
) -> Iterator[Mask]:
    """The masks of one leaf element's text, by the first rule that applies."""
    top, start = stack[-1], stack[-1].text_start
    text = data[start:end]
    restored = _restored_as(member, stack, text, None, exc) if theirs else None
    if restored is not None:
        yield Mask(start, end, restored)
    elif exc.encrypted_by_presence and top.attrs.get(b"encrypted", (0, 0, b""))[2] == b"true":
        yield Mask(start, end, b"[encrypted]")
    elif _matches(REGENERATED, member, stack):
        yield Mask(start, end, b"[regenerated]")
    elif _holds_ids(member, stack, text):
        yield from _ids(data, start, end, _id_kind(stack))
    elif text[:1] == b"-" and text[1:].isdigit() and _matches(NEGATIVE_ID_VALUED, member, stack):
        yield from _ids(data, start + 1, end, b"negated scale")
    elif _matches(RESTAMPED, member, stack):
        yield from _integers(data, start, end, TIME)
    elif (tree := _json_leaf(top.name, text, theirs)) is not None:
        yield Mask(start, end, tree)
    elif _matches(_EVENT_FIELD, member, stack):
        yield from _event_instance(stack, data, start, end)
    elif _matches(_RESPONSE_VARIABLE, member, stack):
        yield from _response_variable(stack, data, start, end)
    elif member == "moodle_backup.xml" and top.name in _MANIFEST_NAMES:
        yield from _named_ids(data, start, end)
    elif member == "users.xml" and _matches(_USER_FIELD, member, stack):
        yield from _site_user(stack, data, start, end)
    elif member == "badges.xml" and _matches(_BADGE_PARAMETER, member, stack):
        yield from _badge_parameter(stack, data, start, end)
    else:
        for m in _LINK.finditer(data, start, end):
            yield from _ids(data, m.start(), m.end(), m.group(0).split(b"*")[0])


_BADGE_PARAMETER = (at("badges.xml", "parameter", "name"), at("badges.xml", "parameter", "value"))


def _attribute_masks(
    member: str, stack: list[_Open], data: bytes, theirs: bool, exc: Exceptions
) -> Iterator[Mask]:
    for name, (a, b, value) in stack[-1].attrs.items():
        restored = _restored_as(member, stack, value, name, exc) if theirs else None
        if restored is not None:
            yield Mask(a, b, restored)
        elif ID_NAME.match(name):
            yield from _ids(data, a, b, stack[-1].name + b"@" + name)


def _run_specific(member: str, data: bytes) -> list[Mask]:
    """mbzxml's masks of what differs between two runs of Moodle's backup
    (moodle_backup.xml's name, date, backup id, filename)."""
    return xml_masks(member, data, None) if member == "moodle_backup.xml" else []


def restore_masks(member: str, data: bytes, theirs: bool, exc: Exceptions) -> list[Mask]:
    """Every span of an XML member a restore (or the run) may change, in
    order; ``theirs``: the member is Moodle's (``RESTORED_AS`` applies)."""
    masks: list[Mask] = []
    for kind, stack, start, _end in walk(data):
        if not stack:
            continue
        top = stack[-1]
        if kind == "start":
            masks.extend(_attribute_masks(member, stack, data, theirs, exc))
        elif b"<" not in data[top.text_start : start]:
            masks.extend(_leaf_masks(member, stack, data, start, theirs, exc))
    run = _run_specific(member, data)
    masks = [m for m in masks if not any(r.start < m.end and m.start < r.end for r in run)]
    return sorted([*masks, *run], key=lambda m: m.start)


def _children(data: bytes, parent: bytes, child: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each ``child`` element directly inside a ``parent``,
    from the indentation before it to its end tag."""
    for kind, stack, start, end in walk(data):
        if len(stack) >= 2 and stack[-1].name == child and stack[-2].name == parent:
            if kind == "start":
                begin = data.rfind(b"\n", 0, start) + 1
            else:
                yield begin, end


def _reorder_children(
    data: bytes, masked: bytes, parent: bytes, child: bytes
) -> tuple[bytes, bool]:
    """``data`` (the raw member) with the ``child`` records of each
    ``parent`` in the order of their masked bytes, so their order does not
    count; and whether that order is unambiguous (no two records of one
    parent mask alike).  A parent's records are left as they are unless
    only the same whitespace lies between them."""
    raw = list(_children(data, parent, child))
    keys = [masked[a:b] for a, b in _children(masked, parent, child)]
    if len(keys) != len(raw):
        return data, True
    out, done, alone = [], 0, True
    for run in _runs(data, raw):
        gaps = {data[raw[i][1] : raw[j][0]] for i, j in itertools.pairwise(run)}
        if len(run) < 2 or len(gaps) != 1:
            continue
        order = sorted(run, key=keys.__getitem__)
        out += [data[done : raw[run[0]][0]], gaps.pop().join(data[slice(*raw[i])] for i in order)]
        done = raw[run[-1]][1]
        alone = alone and len({keys[i] for i in run}) == len(run)
    return b"".join([*out, data[done:]]), alone


def _runs(data: bytes, spans: list[tuple[int, int]]) -> Iterator[list[int]]:
    """The spans' indexes, grouped by parent: consecutive records with
    nothing but whitespace between them."""
    run: list[int] = []
    for i, (begin, _end) in enumerate(spans):
        if run and data[spans[run[-1]][1] : begin].strip():
            yield run
            run = []
        run.append(i)
    if run:
        yield run


_FILE = re.compile(rb"<file id=.*?</file>", re.S)
_FILE_AREA = re.compile(rb"<component>([^<]*)</component>\s*<filearea>([^<]*)</filearea>")
_CONTENT_FIELDS = re.compile(rb"<(contenthash|filesize)>([^<]*)</\1>")


def regenerated_masks(data: bytes, exc: Exceptions) -> Iterator[Mask]:
    """files.xml: contenthash and filesize of the file records of an area
    the restore remade with other contents (``Exceptions.regenerated``)."""
    for f in _FILE.finditer(data):
        area = _FILE_AREA.search(f.group(0))
        if area and (area.group(1), area.group(2)) in exc.regenerated:
            for m in _CONTENT_FIELDS.finditer(data, f.start(), f.end()):
                yield Mask(m.start(2), m.end(2), b"[remade by the restore]")


def drop_children(member: str, data: bytes, exc: Exceptions) -> bytes:
    """Moodle's member without the children the restore did not recreate
    (``Exceptions.dropped``), each with its line."""
    for path, parent, child in exc.dropped:
        if path != member:
            continue
        for begin, end in reversed(list(_children(data, parent, child))):
            end += data[end : end + 1] == b"\n"
            data = data[:begin] + data[end:]
    return data


_FILE_FIELD = re.compile(rb"<(contenthash|component|filearea|filepath|filename)>([^<]*)</\1>")


def regenerated_files(files_xml: bytes, exc: Exceptions) -> dict[tuple[bytes, ...], str]:
    """(component, filearea, filepath, filename) -> contenthash of each file
    files.xml names in the areas the restore remade."""
    found = {}
    for f in _FILE.finditer(files_xml):
        fields = dict(_FILE_FIELD.findall(f.group(0)))
        key = tuple(
            fields.get(k, b"") for k in (b"component", b"filearea", b"filepath", b"filename")
        )
        if key[:2] in exc.regenerated and b"contenthash" in fields:
            found[key] = fields[b"contenthash"].decode()
    return found


MaskedId = tuple[int, bytes, bytes]  # (offset in the masked member, kind, the id)


def mask_restored(member: str, data: bytes, exc: Exceptions, *, theirs: bool) -> bytes:
    """The member with what a restore changes masked (XML only: other
    members are contents, compared as they are)."""
    return mask_with_ids(member, data, exc, theirs=theirs)[0]


def mask_with_ids(
    member: str, data: bytes, exc: Exceptions, *, theirs: bool
) -> tuple[bytes, list[MaskedId]]:
    """``mask_restored``, and where each masked id went in its output.  The
    records Moodle's restore reorders (``UNORDERED``) are put in the order
    of their masked bytes first; if two mask alike, which is which is
    unknown, and the member's ids are not given."""
    if not member.endswith(".xml"):
        return data, []
    if theirs:
        data = drop_children(member, data, exc)
    masks = _all_masks(member, data, theirs, exc)
    unambiguous = True
    rules = [r for r in (*UNORDERED, *exc.unordered) if fnmatch.fnmatchcase(member, r[0])]
    # an outer multiset is put in order by its children's bytes, so only
    # once the inner ones are: passes until one moves nothing (a pass per
    # level of nesting at most; rules may be listed outer first)
    for _pass in range(len(rules) + 1):
        before = data
        for _glob, parent, child in rules:
            data, alone = _reorder_children(data, apply_masks(data, masks), parent, child)
            masks, unambiguous = _all_masks(member, data, theirs, exc), unambiguous and alone
        if data == before:
            break
    return apply_masks(data, masks), _masked_ids(masks) if unambiguous else []


def _all_masks(member: str, data: bytes, theirs: bool, exc: Exceptions) -> list[Mask]:
    masks = restore_masks(member, data, theirs, exc)
    if member == "files.xml" and exc.regenerated:
        masks = sorted([*masks, *regenerated_masks(data, exc)], key=lambda m: m.start)
    return masks


def _masked_ids(masks: list[Mask]) -> list[MaskedId]:
    found, shift = [], 0
    for m in masks:
        if isinstance(m, IdMask):
            found.append((m.start + shift, m.kind, m.value))
        shift += len(m.replacement) - (m.end - m.start)
    return found
