"""Whatever ingest accepts comes back: documents nested deeper than Python's
recursion limit export, cat, ls and diff like any other (issue 20, defect 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import MINIMAL_BACKUP, read_members, write_tgz

from coursevault import api
from coursevault.errors import BadInputError, XmlError
from coursevault.store.repository import Repository
from coursevault.tree import xmlcheck, xmltree

DEPTH = 5000
MEMBER = "activities/page_1/page.xml"


def deep_document(depth: int, inner: bytes = b"deepest") -> bytes:
    """An activity whose elements nest ``depth`` levels, each with a field
    beside its child (so every level is a record with a run), indented as
    Moodle would."""
    opening = b"".join(
        b"\n" + b" " * (i % 64) + b'<level n="%d"><name>l%d</name>' % (i, i) for i in range(depth)
    )
    closing = b"".join(b"\n" + b" " * (i % 64) + b"</level>" for i in reversed(range(depth)))
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<activity id="1" moduleid="1" modulename="page" contextid="2">'
        + opening
        + b"<text>"
        + inner
        + b"</text>"
        + closing
        + b"\n</activity>\n"
    )


def _archive(path: Path, doc: bytes, date: int = 1700000000) -> Path:
    backup = MINIMAL_BACKUP.replace(b"1700000000", str(date).encode())
    write_tgz(
        path,
        [
            ("activities/", None),
            ("activities/page_1/", None),
            (MEMBER, doc),
            ("moodle_backup.xml", backup),
        ],
    )
    return path


def test_a_deeply_nested_member_exports_cats_lists_and_diffs(
    cv_repo: Repository, tmp_path: Path
) -> None:
    doc = deep_document(DEPTH)
    src = _archive(tmp_path / "deep.mbz", doc)
    if not _libxml2_takes(doc):  # a build with a depth limit: refused, one line
        with pytest.raises(XmlError, match=f"deep.mbz: {MEMBER}: malformed XML"):
            api.ingest(cv_repo, str(src))
        return
    res = api.ingest(cv_repo, str(src))
    _snap, tree = api.archive_tree(cv_repo, res.snapshot)
    member = tree.find(MEMBER)
    assert member is not None and member.content_kind == "xml"  # cut, not kept raw

    out = tmp_path / "out.mbz"
    api.export(cv_repo, res.snapshot, str(out))
    assert read_members(out) == read_members(src)

    whole: list[bytes] = []
    api.cat(cv_repo, res.snapshot, MEMBER, whole.append)
    assert b"".join(whole) == doc
    part: list[bytes] = []
    address = "/activity" + "/level" * 3
    api.cat(cv_repo, res.snapshot, f"{MEMBER}:{address}", part.append)
    assert part[0].startswith(b'<level n="2"><name>l2</name>')
    assert part[0].count(b"<level ") == DEPTH - 2
    deepest: list[bytes] = []
    api.cat(cv_repo, res.snapshot, f"{MEMBER}:/activity" + "/level" * DEPTH, deepest.append)
    last = DEPTH - 1
    assert deepest == [
        b'<level n="%d"><name>l%d</name><text>deepest</text>\n%s</level>\n'
        % (last, last, b" " * (last % 64))
    ]

    outline = list(api.element_outline(cv_repo, res.snapshot, MEMBER))
    assert [d for d, _el, _n in outline] == list(range(DEPTH + 1))
    assert outline[-1][1].attrs == {"n": str(DEPTH - 1)}

    night2 = _archive(tmp_path / "deep2.mbz", deep_document(DEPTH, b"changed"), 1700086400)
    res2 = api.ingest(cv_repo, str(night2))
    _a, _b, d = api.diff(cv_repo, res.snapshot, res2.snapshot)
    changed = [r for r in d.records if r.member == MEMBER]
    assert [(r.change, r.path.count("/level")) for r in changed] == [("modified", DEPTH)]
    assert [(f.name, f.old, f.new) for f in changed[0].fields] == [("text", "deepest", "changed")]
    removed = api.diff(cv_repo, res2.snapshot, res.snapshot, MEMBER)[2]
    assert len(removed.records) == 1


def _libxml2_takes(doc: bytes) -> bool:
    """Whether this build's libxml2 checks a document this deep (lxml 6.0
    with libxml2 2.14, fed through a parser target, checks any depth)."""
    try:
        xmlcheck.Validator().feed(doc, True)
    except xmlcheck.XmlSyntax:
        return False
    return True


def test_nesting_deeper_than_the_cutting_limit_is_kept_raw_and_comes_back(
    cv_repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_DEPTH open elements a member is stored raw (the scanner's
    state grows with the depth), and says why; it still exports exactly."""
    monkeypatch.setattr(xmltree, "MAX_DEPTH", 100, raising=False)
    doc = deep_document(150)
    src = _archive(tmp_path / "deep.mbz", doc)
    res = api.ingest(cv_repo, str(src))
    assert res.raw_xml == [{"member": MEMBER, "reason": "elements nested deeper than 100 levels"}]
    out = tmp_path / "out.mbz"
    api.export(cv_repo, res.snapshot, str(out))
    assert read_members(out) == read_members(src)
    whole: list[bytes] = []
    api.cat(cv_repo, res.snapshot, MEMBER, whole.append)
    assert b"".join(whole) == doc
    with pytest.raises(BadInputError, match="not a stored XML document"):
        api.element_outline(cv_repo, res.snapshot, MEMBER)


def test_checkpoints_are_not_taken_deep_inside_a_document() -> None:
    """A checkpoint holds every open element, and a member keeps up to 32:
    none is taken where more than MAX_POINT_DEPTH elements are open, and the
    document renders back all the same."""
    from helpers import MemSink

    from coursevault.tree.render import render_document

    deep = 256 + 50
    records = b"".join(b"<r><f>%d</f></r>\n" % i for i in range(20_000))
    doc = deep_document(deep, b"x</text>\n" + records + b"<text>y")
    sink = MemSink()
    chunker = xmltree.XmlChunker(sink, checkpoint_every=64 << 10)
    for i in range(0, len(doc), 50_000):
        chunker.feed(doc[i : i + 50_000])
    tree = chunker.close().store(sink)
    assert chunker.checkpoints  # taken on the way in and out, where shallow enough
    assert max(len(state["stack"]) for _o, state in chunker.checkpoints) <= 256
    out = bytearray()
    render_document(sink.get, tree, out.extend)
    assert bytes(out) == doc
