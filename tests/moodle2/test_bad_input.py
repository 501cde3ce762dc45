"""The bad-input suite (issue 20): every kind of broken or unsafe archive is
refused with exit 2 and one line on stderr naming the archive as the user
gave it and the member where known, leaving nothing in the repository
(refusals.py says exactly what is checked).  Siblings: test_links.py (links
kept or refused), test_file_pool.py (files/<sha1> content that is not its
name: stored with a warning), test_fuzz_input.py (damage at random places)."""

from __future__ import annotations

import gzip
import io
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import CORPUS, MINIMAL_BACKUP, tar_with, write_tgz
from refusals import assert_refused

from coursevault.cli.app import main
from coursevault.store.backend import LocalBackend
from coursevault.store.repository import Repository


def _ti(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.size = size
    ti.linkname = link
    return ti


def truncated_gzip(p: Path) -> None:
    p.write_bytes(
        CORPUS[0].read_bytes()[:-3000]
        if CORPUS[0].read_bytes()[:2] == b"\x1f\x8b"
        else next(c for c in CORPUS if c.read_bytes()[:2] == b"\x1f\x8b").read_bytes()[:3000]
    )


def _a_tgz() -> bytearray:
    return bytearray(next(c for c in CORPUS if c.read_bytes()[:2] == b"\x1f\x8b").read_bytes())


def corrupt_deflate(p: Path) -> None:
    data = _a_tgz()
    data[10:12] = b"\xff\xff"  # the first deflate block header: an invalid block type
    p.write_bytes(bytes(data))


def gzip_crc_mismatch(p: Path) -> None:
    data = _a_tgz()
    data[-8] ^= 0xFF  # the trailer's CRC-32
    p.write_bytes(bytes(data))


def corrupt_zip(p: Path) -> None:
    z = next(c for c in CORPUS if c.read_bytes()[:2] == b"PK").read_bytes()
    p.write_bytes(z[:200] + b"\xff" * 400 + z[600:])


def _corpus_zip() -> bytes:
    return next(c for c in CORPUS if "moodle_28_quiz" in c.name).read_bytes()


def _zip_data_at(data: bytes, member: str) -> int:
    """Where a member's (compressed) data starts in the zip."""
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(member)
    header = data[info.header_offset : info.header_offset + 30]
    return (
        info.header_offset
        + 30
        + int.from_bytes(header[26:28], "little")
        + int.from_bytes(header[28:30], "little")
    )


def zip_member_cut(p: Path) -> None:
    """100 bytes cut out of one member's data: the central directory's offsets
    are stale (issue 20: "internal error: OSError: [Errno 22]")."""
    z = _corpus_zip()
    at = _zip_data_at(z, "gradebook.xml") + 100
    p.write_bytes(z[:at] + z[at + 100 :])


def zip_first_member_cut(p: Path) -> None:
    z = _corpus_zip()
    at = _zip_data_at(z, "activities/quiz_4/quiz.xml") + 100
    p.write_bytes(z[:at] + z[at + 100 :])


def zip_bytes_added(p: Path) -> None:
    z = _corpus_zip()
    at = _zip_data_at(z, "gradebook.xml") + 100
    p.write_bytes(z[:at] + b"\x00" * 100 + z[at:])


def zip_member_damaged(p: Path) -> None:
    """Bytes of one member's data changed in place: the offsets hold, its CRC does not."""
    z = bytearray(_corpus_zip())
    at = _zip_data_at(bytes(z), "gradebook.xml") + 100
    z[at : at + 8] = bytes(b ^ 0x55 for b in z[at : at + 8])
    p.write_bytes(bytes(z))


def not_archive(p: Path) -> None:
    p.write_bytes(b"hello, I am a text file\n" * 10)


def empty_file(p: Path) -> None:
    p.write_bytes(b"")


def malformed_xml(p: Path) -> None:
    write_tgz(p, [("moodle_backup.xml", MINIMAL_BACKUP), ("course.xml", b"<a><b></a>")])


def xml_with_nul(p: Path) -> None:
    # libxml2's message for this one ends in a line break of its own
    write_tgz(p, [("moodle_backup.xml", MINIMAL_BACKUP), ("course.xml", b"<a>\n<b>\0</b></a>")])


def xml_with_dtd(p: Path) -> None:
    bomb = (
        b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        b"\n<lolz>&lol2;</lolz>"
    )
    write_tgz(p, [("moodle_backup.xml", MINIMAL_BACKUP), ("evil.xml", bomb)])


def xml_with_entity(p: Path) -> None:
    write_tgz(p, [("moodle_backup.xml", MINIMAL_BACKUP), ("e.xml", b"<a>&xxe;</a>")])


def absolute_path(p: Path) -> None:
    tar_with(p, [_ti("/etc/passwd", size=3)], {"/etc/passwd": b"abc"})


def dotdot_path(p: Path) -> None:
    tar_with(p, [_ti("a/../../x.xml", size=3)], {"a/../../x.xml": b"abc"})


def symlink(p: Path) -> None:
    tar_with(p, [_ti("link.xml", tarfile.SYMTYPE, link="/etc/passwd")], {})


def hard_link_forward(p: Path) -> None:
    """A hard link is kept only to a member already read (test_links.py)."""
    tar_with(p, [_ti("a.xml", tarfile.LNKTYPE, link="b.xml"), _ti("b.xml")], {})


def hard_link_outside(p: Path) -> None:
    tar_with(p, [_ti("passwd", tarfile.LNKTYPE, link="/etc/passwd")], {})


def device(p: Path) -> None:
    tar_with(p, [_ti("dev", tarfile.CHRTYPE)], {})


def duplicate_names(p: Path) -> None:
    write_tgz(p, [("moodle_backup.xml", MINIMAL_BACKUP), ("moodle_backup.xml", MINIMAL_BACKUP)])


def absurd_size(p: Path) -> None:
    header = bytearray(tarfile.TarInfo("big.bin").tobuf(format=tarfile.USTAR_FORMAT))
    header[124:136] = b"77777777777\0"
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}".encode() + b"\0 "
    p.write_bytes(gzip.compress(bytes(header) + b"x" * 512))


def no_manifest(p: Path) -> None:
    write_tgz(p, [("course/", None), ("course/course.xml", b"<course></course>")])


def zip_traversal(p: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("moodle_backup.xml", MINIMAL_BACKUP)
        z.writestr("../escape.xml", b"<a></a>")
    p.write_bytes(buf.getvalue())


def _tar_of(members: list[tuple[str, bytes | None]]) -> bytes:
    """The uncompressed tar Moodle would write for these members."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.mbz"
        write_tgz(path, members)
        return gzip.decompress(path.read_bytes())


BIG = bytes(range(256)) * 40  # 10 KiB: a member spanning blocks


def tar_ends_inside_a_member(p: Path) -> None:
    """The tar stream itself is cut (the gzip around it is whole)."""
    tar = _tar_of([("moodle_backup.xml", MINIMAL_BACKUP), ("files/big.bin", BIG)])
    p.write_bytes(gzip.compress(tar[: len(tar) - 1024 - 5000]))


def tgz_cut_in_half(p: Path) -> None:
    data = _a_tgz()
    p.write_bytes(bytes(data[: len(data) // 2]))


def tar_without_end_marker(p: Path) -> None:
    tar = _tar_of([("moodle_backup.xml", MINIMAL_BACKUP)])
    assert tar.endswith(b"\0" * 1024)
    p.write_bytes(gzip.compress(tar[:-1024]))  # the two zero blocks that end it


def data_after_end_marker(p: Path) -> None:
    tar = _tar_of([("moodle_backup.xml", MINIMAL_BACKUP)])
    p.write_bytes(gzip.compress(tar + b"trailing junk"))


def tar_header_damaged(p: Path) -> None:
    """A byte of the second header changed inside an intact gzip stream."""
    tar = bytearray(_tar_of([("moodle_backup.xml", MINIMAL_BACKUP), ("course.xml", b"<c/>")]))
    second = 512 + (len(MINIMAL_BACKUP) + 511) // 512 * 512
    tar[second + 3] ^= 0x20
    p.write_bytes(gzip.compress(bytes(tar)))


def pax_header(p: Path) -> None:
    with tarfile.open(p, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("moodle_backup.xml")
        ti.size = len(MINIMAL_BACKUP)
        ti.pax_headers = {"comment": "re-packed"}
        tf.addfile(ti, io.BytesIO(MINIMAL_BACKUP))


def name_not_utf8(p: Path) -> None:
    header = bytearray(tarfile.TarInfo("x").tobuf(format=tarfile.USTAR_FORMAT))
    header[0:6] = b"caf\xe9.x"[:6]
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}".encode() + b"\0 "
    p.write_bytes(gzip.compress(bytes(header) + b"\0" * 1024))


def zip_symlink(p: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("moodle_backup.xml", MINIMAL_BACKUP)
        link = zipfile.ZipInfo("files/link")
        link.external_attr = 0o120777 << 16
        z.writestr(link, "/etc/passwd")
    p.write_bytes(buf.getvalue())


def zip_encrypted(p: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("moodle_backup.xml", MINIMAL_BACKUP)
        z.writestr("secret.xml", b"<a/>")
    data = bytearray(buf.getvalue())
    cd = data.rfind(b"PK\x01\x02")  # the last central directory entry: secret.xml
    data[cd + 8] |= 0x1
    p.write_bytes(bytes(data))


def zip_unknown_method(p: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("moodle_backup.xml", MINIMAL_BACKUP)
        z.writestr("odd.xml", b"<a/>")
    data = bytearray(buf.getvalue())
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):  # the local header and the directory
        at = data.rfind(sig)
        data[at + (8 if sig == b"PK\x03\x04" else 10)] = 99
    p.write_bytes(bytes(data))


def manifest_without_course(p: Path) -> None:
    manifest = MINIMAL_BACKUP.replace(b"<original_course_id>7</original_course_id>", b"")
    write_tgz(p, [("moodle_backup.xml", manifest)])


def tar_file_named_as_folder(p: Path) -> None:
    """A file "./" (its path empty) holding data: a zip export lost it."""
    write_tgz(p, [("moodle_backup.xml", MINIMAL_BACKUP), ("./", b"zz")])


def tar_folder_with_data(p: Path) -> None:
    ti = _ti("dirwithdata/", tarfile.DIRTYPE)
    ti.size = 2
    tar_with(p, [_ti("moodle_backup.xml", size=len(MINIMAL_BACKUP)), ti],
             {"moodle_backup.xml": MINIMAL_BACKUP, "dirwithdata/": b"zz"})


def name_with_a_line_break(p: Path) -> None:
    write_tgz(p, [("moodle_backup.xml", MINIMAL_BACKUP), ("course/a\nfake.xml", b"<a/>")])


def a_folder(p: Path) -> None:
    p.mkdir()


def missing_file(p: Path) -> None:
    pass


CASES: list[tuple[Callable[[Path], None], str, str | None]] = [
    (truncated_gzip, "truncated", None),
    (corrupt_deflate, "corrupt gzip stream: Error -3", None),
    (gzip_crc_mismatch, "corrupt gzip stream: CRC check failed", None),
    (corrupt_zip, "corrupt zip", None),
    (zip_member_cut, "corrupt zip archive: 100 bytes missing", "gradebook.xml"),
    (zip_first_member_cut, "100 bytes missing", "activities/quiz_4/quiz.xml"),
    (zip_bytes_added, "corrupt zip archive: 100 bytes added", "gradebook.xml"),
    (zip_member_damaged, "corrupt zip member", "gradebook.xml"),
    (not_archive, "not a Moodle backup archive", None),
    (empty_file, "empty file", None),
    (malformed_xml, "malformed XML at line 1", "course.xml"),
    (xml_with_nul, "malformed XML at line 2: Invalid character: Char 0x0", "course.xml"),
    (xml_with_dtd, "DTD", "evil.xml"),
    (xml_with_entity, "malformed XML", "e.xml"),
    (absolute_path, "absolute path", "/etc/passwd"),
    (dotdot_path, "'..'", "a/../../x.xml"),
    (symlink, "symbolic links", "link.xml"),
    (hard_link_forward, "hard link to 'b.xml', which is not an earlier member", "a.xml"),
    (hard_link_outside, "hard link to '/etc/passwd'", "passwd"),
    (device, "device", "dev"),
    (duplicate_names, "duplicate member name", "moodle_backup.xml"),
    (absurd_size, "absurd declared size", "big.bin"),
    (no_manifest, "no moodle_backup.xml", None),
    (zip_traversal, "'..'", "../escape.xml"),
    (tar_ends_inside_a_member, "truncated: archive ends inside this member", "files/big.bin"),
    (tgz_cut_in_half, "truncated gzip stream", None),
    (
        tar_without_end_marker,
        "without an end-of-archive marker (after member moodle_backup.xml)",
        None,
    ),
    (data_after_end_marker, "unexpected data after the end-of-archive marker", None),
    (
        tar_header_damaged,
        "header checksum mismatch (not a tar archive or corrupt) (after member moodle_backup.xml)",
        None,
    ),
    (pax_header, "extended (GNU/pax) tar headers are not supported", None),
    (name_not_utf8, "entry name is not UTF-8", None),
    (zip_symlink, "links are not allowed", "files/link"),
    (zip_encrypted, "encrypted zip members are not supported", "secret.xml"),
    (zip_unknown_method, "compression method", "odd.xml"),
    (manifest_without_course, "(use --course/--time)", "moodle_backup.xml"),
    (tar_file_named_as_folder, "a file entry named as a folder", "./"),
    (tar_folder_with_data, "a folder entry that holds data", "dirwithdata/"),
    (name_with_a_line_break, "member name contains a control character", "course/a fake.xml"),
    (a_folder, "is a directory", None),
    (missing_file, "no such file", None),
]


@pytest.mark.parametrize(("make", "message", "member"), CASES, ids=[c[0].__name__ for c in CASES])
def test_bad_archive_is_refused_cleanly(
    seeded_repo: Path,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[Path], None],
    message: str,
    member: str | None,
) -> None:
    Path("nights").mkdir()
    make(Path("nights/bad.mbz"))
    assert_refused(seeded_repo, "nights/bad.mbz", capsys, message, member)
    with Repository.open(LocalBackend(seeded_repo), cache_dir=Path("cache")) as r:
        assert len(r.snapshots()) == 1
        assert not list(r.backend.list("locks/"))


def test_late_failure_removes_packs_already_written(tmp_path: Path) -> None:
    """An error in the last member, after several packs were flushed, leaves nothing."""
    import os

    from coursevault.errors import XmlError
    from coursevault.snapshot.ingest import ingest_archive

    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend, pack_size=64 * 1024)
    bad = tmp_path / "late.mbz"
    members: list[tuple[str, bytes | None]] = [("moodle_backup.xml", MINIMAL_BACKUP)]
    members += [(f"files/{i:02x}/blob{i}", os.urandom(40_000)) for i in range(20)]
    members.append(("zz.xml", b"<broken>"))
    write_tgz(bad, members)
    with Repository.open(backend, cache_dir=tmp_path / "cache") as repo:
        with pytest.raises(XmlError, match=r"zz\.xml"):
            ingest_archive(repo, str(bad))
        assert list(backend.list("packs/")) == []
        assert list(backend.list("index/")) == []
        assert repo.snapshots() == []
        assert repo.catalog.count_objects() == 0


def test_a_refused_archive_does_not_stop_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A nightly run over many courses: the broken one is reported, the rest
    are stored, and the exit code says something was refused."""
    monkeypatch.setenv("COURSEVAULT_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "repo"
    assert main(["init", str(repo)]) == 0
    good = [c for c in CORPUS if "simplecertificate" in c.name]
    bad = tmp_path / "bad.mbz"
    malformed_xml(bad)
    capsys.readouterr()
    code = main(["ingest", "-r", str(repo), str(good[0]), str(bad), str(good[1]), "--json"])
    out, err = capsys.readouterr()
    assert code == 2
    assert [line.split(":")[0] for line in err.splitlines()] == ["coursevault"] * 2
    assert "bad.mbz: course.xml: malformed XML" in err and "1 of 3 archives refused" in err
    assert len(out.splitlines()) == 2  # a JSON line for each stored archive
    with Repository.open(LocalBackend(repo), cache_dir=tmp_path / "cache") as r:
        assert len(r.snapshots()) == 2


def test_a_damaged_zip_does_not_stop_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20: a zip with bytes cut out of a member stopped the batch with
    "internal error: OSError", storing only the archives before it."""
    monkeypatch.setenv("COURSEVAULT_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "repo"
    assert main(["init", str(repo)]) == 0
    good = [c for c in CORPUS if "simplecertificate" in c.name]
    bad = tmp_path / "bad.mbz"
    zip_member_cut(bad)
    capsys.readouterr()
    code = main(["ingest", "-r", str(repo), str(good[0]), str(bad), str(good[1]), "--json"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "internal error" not in err and "gradebook.xml" in err
    assert "1 of 3 archives refused" in err
    assert len(out.splitlines()) == 2
    with Repository.open(LocalBackend(repo), cache_dir=tmp_path / "cache") as r:
        assert len(r.snapshots()) == 2
