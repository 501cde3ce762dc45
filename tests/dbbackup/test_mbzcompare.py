"""The comparer can fail: Moodle's own backup of the rich course, edited in
known ways, against the original.  Each run-specific value may change; each
byte outside them may not.

Copies are written with fresh tar header mtimes (write_tgz's), so every test
also holds that headers are not compared.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import read_members, write_tgz

from .mbzcompare import Comparison, Status, compare_archives, main
from .mbzcrypt import decrypt_value, encrypt_value
from .refsite import RefSite

LTI = "activities/lti_220/lti.xml"
Members = list[tuple[str, bool, bytes]]
Edit = Callable[[bytes], bytes]


@pytest.fixture(scope="session")
def rich(refsite: RefSite) -> Path:
    return refsite.course("rich").backup


@pytest.fixture(scope="session")
def rich_members(rich: Path) -> Members:
    return read_members(rich)


@pytest.fixture
def edited(tmp_path: Path, rich_members: Members) -> Callable[..., Path]:
    """A copy of the rich course with members edited ({name: function of
    the bytes, or None to drop it}) and members added."""

    def write(edits: dict[str, Edit | None], add: dict[str, bytes] | None = None) -> Path:
        out: list[tuple[str, bytes | None]] = []
        for name, is_dir, data in rich_members:
            if name in edits and edits[name] is None:
                continue
            edit = edits.get(name)
            out.append((name, None if is_dir else edit(data) if edit else data))
        out += list((add or {}).items())
        path = tmp_path / "edited.mbz"
        write_tgz(path, out, mtime=1800000000)
        return path

    return write


def _sub(pattern: bytes, repl: bytes) -> Edit:
    def edit(data: bytes) -> bytes:
        new, n = re.subn(pattern, repl, data, count=1)
        assert n == 1, f"{pattern!r} not found"
        return new

    return edit


def _statuses(c: Comparison) -> dict[str, Status]:
    return {o.path: o.status for o in c.problems()}


def test_a_backup_equals_itself(rich: Path) -> None:
    c = compare_archives(rich, rich)
    assert c.identical and not c.problems() and c.order_difference is None
    assert c.table().splitlines()[-1].split() == ["all", "493", "493", "100%"]
    assert c.by_plugin()["mod_lti"].total == 13


def test_one_changed_byte_is_found_with_its_line_and_path(
    edited: Callable[..., Path], rich: Path
) -> None:
    ours = edited(
        {"course/course.xml": _sub(rb"<shortname>rich</shortname>", b"<shortname>rick</shortname>")}
    )
    c = compare_archives(ours, rich)
    assert _statuses(c) == {"course/course.xml": Status.DIFFERS}
    d = c.outcome("course/course.xml").first_difference
    assert d is not None and "rick" in d.ours and "rich" in d.theirs
    assert d.path.startswith("/course[@id=38]")
    diff = c.outcome("course/course.xml").diff()
    assert diff[0].startswith("--- theirs/") and any(
        line.startswith("+") and "rick" in line for line in diff
    )
    assert c.by_plugin()["core"].identical == c.by_plugin()["core"].total - 1


def test_a_file_content_is_compared_too(
    edited: Callable[..., Path], rich: Path, rich_members: Members
) -> None:
    name = next(n for n, is_dir, _ in rich_members if n.startswith("files/") and not is_dir)
    c = compare_archives(edited({name: lambda data: data[:-1] + bytes([data[-1] ^ 1])}), rich)
    assert _statuses(c) == {name: Status.DIFFERS}


RUN_SPECIFIC_EDITS = {
    "moodle_backup.xml": [
        _sub(rb"<backup_date>\d+</backup_date>", b"<backup_date>1999999999</backup_date>"),
        _sub(rb'backup_id="[0-9a-f]+"', b'backup_id="0123456789abcdef0123456789abcdef"'),
        _sub(
            rb"<name>backup-moodle2[^<]*</name>",
            b"<name>backup-moodle2-course-38-rich-20991231-2359.mbz</name>",
        ),
        _sub(
            rb"(<name>filename</name>\s*<value>)[^<]*",
            rb"\1backup-moodle2-course-38-rich-20991231-2359.mbz",
        ),
    ],
    ".ARCHIVE_INDEX": [_sub(rb"(\tf\t\d+\t)\d+\n", rb"\g<1>1999999999\n")],
}


@pytest.mark.parametrize(
    ("member", "which"),
    [(m, i) for m, edits in RUN_SPECIFIC_EDITS.items() for i in range(len(edits))],
)
def test_run_specific_values_may_differ(
    edited: Callable[..., Path], rich: Path, member: str, which: int
) -> None:
    c = compare_archives(edited({member: RUN_SPECIFIC_EDITS[member][which]}), rich)
    assert c.identical, c.problems()


@pytest.mark.parametrize(
    "edit",
    [
        _sub(rb"<original_course_id>38<", b"<original_course_id>39<"),
        _sub(rb"(<name>users</name>\s*<value>)1", rb"\g<1>0"),  # another setting's value
        _sub(rb"</backup_date>", b"</backup_date> "),
    ],
    ids=["course id", "users setting", "bytes after backup_date"],
)
def test_only_those_values_may_differ(edited: Callable[..., Path], rich: Path, edit: Edit) -> None:
    c = compare_archives(edited({"moodle_backup.xml": edit}), rich)
    assert _statuses(c) == {"moodle_backup.xml": Status.DIFFERS}


def test_missing_and_extra_members(edited: Callable[..., Path], rich: Path) -> None:
    c = compare_archives(
        edited({"activities/url_203/url.xml": None}, add={"stray.xml": b"<x/>"}), rich
    )
    assert _statuses(c) == {"activities/url_203/url.xml": Status.MISSING, "stray.xml": Status.EXTRA}
    assert c.by_plugin()["mod_url"].identical == c.by_plugin()["mod_url"].total - 1


def test_member_order_is_compared(tmp_path: Path, rich: Path, rich_members: Members) -> None:
    members = [(n, None if d else b) for n, d, b in rich_members]
    i = next(i for i, m in enumerate(members) if m[0] == LTI)
    members[i], members[i + 1] = members[i + 1], members[i]
    write_tgz(tmp_path / "swapped.mbz", members)
    c = compare_archives(tmp_path / "swapped.mbz", rich)
    assert not c.problems() and c.order_difference and not c.identical


def _reencrypt(
    key: bytes,
    plaintext: Callable[[bytes], bytes],
    element: bytes = b"password",
    to: bytes | None = None,
) -> Edit:
    """Encrypt an element's plaintext (changed by ``plaintext``) again, with
    a new IV, under ``to`` (default: the same key)."""

    def edit(data: bytes) -> bytes:
        def one(m: re.Match[bytes]) -> bytes:
            value = encrypt_value(plaintext(decrypt_value(m[2], key)), to or key)
            return m[1] + value.encode() + m[3]

        new, n = re.subn(rb"(<" + element + rb' encrypted="true">)([^<]*)(<)', one, data)
        assert n == 1
        return new

    return edit


def test_encrypted_elements_compare_by_plaintext(
    edited: Callable[..., Path], rich: Path, refsite_backup_key: bytes
) -> None:
    key = refsite_backup_key
    same = edited({LTI: _reencrypt(key, lambda p: p)})
    assert same.read_bytes() != rich.read_bytes()
    assert compare_archives(same, rich, backup_key=key).identical
    # without the key the new IV cannot be told from a new value
    assert _statuses(compare_archives(same, rich)) == {LTI: Status.DIFFERS}


def test_an_encrypted_element_with_another_plaintext_differs(
    edited: Callable[..., Path], rich: Path, refsite_backup_key: bytes
) -> None:
    ours = edited({LTI: _reencrypt(refsite_backup_key, lambda p: p + b"!")})
    c = compare_archives(ours, rich, backup_key=refsite_backup_key)
    assert _statuses(c) == {LTI: Status.DIFFERS}
    d = c.outcome(LTI).first_difference
    assert d is not None and "decrypts to 12 bytes" in d.ours and d.path.endswith("/lti[@id=1]")


def test_an_encrypted_element_under_another_key_differs(
    edited: Callable[..., Path], rich: Path, refsite_backup_key: bytes
) -> None:
    key, other = refsite_backup_key, bytes(32)
    both = [_reencrypt(key, lambda p: p, e, to=other) for e in (b"password", b"resourcekey")]
    ours = edited({LTI: lambda data: both[1](both[0](data))})
    c = compare_archives(ours, rich, backup_key=key)
    assert _statuses(c) == {LTI: Status.DIFFERS}
    assert compare_archives(ours, rich, backup_key=refsite_backup_key, our_key=other).identical


def test_the_command_line(
    rich: Path, edited: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ours = edited({"course/course.xml": _sub(rb"<shortname>rich<", b"<shortname>rick<")})
    assert main([str(ours), str(rich), "--member", "course/*", "--diff", "--key-db", ""]) == 1
    out = capsys.readouterr().out
    assert "differs         course/course.xml" in out and "+  <shortname>rick</shortname>" in out
    assert main([str(rich), str(rich), "--key-db", ""]) == 0
