"""``init --encrypt`` as a user runs it: a real course with its people goes
in, nothing of them is readable in the repository's files, everything
exports exact, a wrong passphrase is exit 12, damage is found by check,
and the key commands open, add, change and remove passphrases (issue 25)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import CORPUS_DIR, logical, read_members
from lxml import etree

Cv = Callable[..., Any]
# Moodle 4.5's backup of the reference site's gen_s: 101 users, their posts and submissions
GEN_S = CORPUS_DIR.parents[1] / "moodle-site" / "backups" / "c002-gen_s.mbz"


@pytest.fixture
def course() -> Path:
    if not GEN_S.exists():
        pytest.skip(f"the reference site's backups are not beside the clone ({GEN_S})")
    return GEN_S


def _secrets_of(archive: Path) -> list[bytes]:
    """What no one holding the repository's files may read: the users'
    e-mails and names, and the bytes of the course's biggest file."""
    members = logical(read_members(archive))
    found: list[bytes] = []
    for user in etree.fromstring(members["users.xml"]).iter("user"):
        found += [(user.findtext(t) or "").encode() for t in ("email", "lastname", "username")]
    biggest = max((d for p, d in members.items() if p.startswith("files/")), key=len)
    found.append(biggest[len(biggest) // 2:len(biggest) // 2 + 48])
    return [s for s in found if len(s) >= 6]


def _repository_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_an_encrypted_repository_holds_no_plaintext_and_exports_exact(
    cv: Cv, course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = _secrets_of(course)
    assert len(secrets) > 200
    plain, sealed = tmp_path / "plain", tmp_path / "sealed"
    monkeypatch.setenv("COURSEVAULT_NEW_PASSWORD", "correct horse")
    monkeypatch.setenv("COURSEVAULT_PASSWORD", "correct horse")
    assert cv("-r", plain, "init").code == 0
    assert cv("-r", sealed, "init", "--encrypt").code == 0
    ids = {}
    for repo in (plain, sealed):
        r = cv("-r", repo, "ingest", course, "--json")
        assert r.code == 0, r.err
        ids[repo] = json.loads(r.out)["snapshot"]
    assert ids[plain] != ids[sealed]  # keyed ids: the same snapshot, another id
    in_plain, in_sealed = _repository_bytes(plain), _repository_bytes(sealed)
    assert secrets[-1] in in_plain  # the file's bytes, stored raw where nothing hides them
    leaked = [s for s in secrets if s in in_sealed]
    assert not leaked, leaked[:5]
    assert b"gen_s" not in in_sealed and b"Test course" not in in_sealed
    course_key = json.loads(cv("-r", sealed, "snapshots", "--json").out)[0]["course"]
    names = [str(p.relative_to(sealed)) for p in sealed.rglob("*")]
    assert not [n for n in names if course_key in n]  # refs/heads/ names are keyed too
    assert [n for n in (str(p) for p in plain.rglob("*")) if course_key in n]
    out = tmp_path / "back.mbz"
    assert cv("-r", sealed, "export", ids[sealed], "-o", out).code == 0
    assert out.read_bytes() == cv_export(cv, plain, ids[plain], tmp_path / "plain.mbz")
    check = cv("-r", sealed, "check", "--read-data", "--json")
    assert check.code == 0, check.out + check.err


def cv_export(cv: Cv, repo: Path, snap: str, out: Path) -> bytes:
    assert cv("-r", repo, "export", snap, "-o", out).code == 0
    return out.read_bytes()


def _encrypted_repo(cv: Cv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = tmp_path / "repo"
    monkeypatch.setenv("COURSEVAULT_NEW_PASSWORD", "pw one")
    monkeypatch.setenv("COURSEVAULT_PASSWORD", "pw one")
    assert cv("-r", repo, "init", "--encrypt").code == 0
    archive = sorted(CORPUS_DIR.glob("*.mbz"))[0]
    assert cv("-r", repo, "ingest", archive).code == 0
    return repo


def _one_line(result: Any, code: int, word: str) -> None:
    assert result.code == code, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and word in lines[0], result.err


def test_wrong_or_missing_passphrase_is_exit_12(
    cv: Cv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _encrypted_repo(cv, tmp_path, monkeypatch)
    monkeypatch.setenv("COURSEVAULT_PASSWORD", "pw two")
    _one_line(cv("-r", repo, "snapshots"), 12, "wrong passphrase")
    monkeypatch.delenv("COURSEVAULT_PASSWORD")
    _one_line(cv("-r", repo, "snapshots"), 12, "encrypted")  # stdin is no terminal here
    (tmp_path / "pw").write_text("pw one\n")
    assert cv("--password-file", tmp_path / "pw", "-r", repo, "snapshots").code == 0
    assert cv("--password-file", tmp_path / "none", "-r", repo, "snapshots").code == 2


def test_a_damaged_pack_fails_check(cv: Cv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _encrypted_repo(cv, tmp_path, monkeypatch)
    [pack] = [p for p in (repo / "packs").rglob("*") if p.is_file()]
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0x40
    pack.write_bytes(bytes(data))
    r = cv("-r", repo, "check", "--read-data")
    assert r.code == 1 and re.search(r"corrupt|authentication", r.out + r.err), r


def test_key_commands(cv: Cv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _encrypted_repo(cv, tmp_path, monkeypatch)
    monkeypatch.setenv("COURSEVAULT_NEW_PASSWORD", "pw two")
    added = json.loads(cv("-r", repo, "key", "add", "--json").out)["added"]
    monkeypatch.setenv("COURSEVAULT_PASSWORD", "pw two")
    slots = json.loads(cv("-r", repo, "key", "list", "--json").out)
    assert [(s["id"] == added, s["current"]) for s in slots] == [(False, False), (True, True)]
    assert cv("-r", repo, "snapshots").code == 0
    _one_line(cv("-r", repo, "key", "remove", added), 2, "opens")
    assert cv("-r", repo, "key", "remove", slots[0]["id"]).code == 0
    monkeypatch.setenv("COURSEVAULT_NEW_PASSWORD", "pw three")
    assert cv("-r", repo, "key", "passwd").code == 0
    _one_line(cv("-r", repo, "snapshots"), 12, "wrong passphrase")
    monkeypatch.setenv("COURSEVAULT_PASSWORD", "pw three")
    assert cv("-r", repo, "check", "--read-data").code == 0
    plain = tmp_path / "plain"
    assert cv("-r", plain, "init").code == 0
    _one_line(cv("-r", plain, "key", "list"), 2, "not encrypted")


def test_parallel_database_backup_into_an_encrypted_repository(
    cv: Cv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """backup --jobs hands the unlocked repository to worker processes."""
    db, dataroot = f"sqlite:///{tmp_path / 'site.db'}", tmp_path / "dataroot"
    site = json.loads(cv("demo-site", "--db", db, "--dataroot", dataroot, "--size", "S",
                         "--courses", "2", "--json").out)
    repo = tmp_path / "repo"
    monkeypatch.setenv("COURSEVAULT_NEW_PASSWORD", "pw")
    monkeypatch.setenv("COURSEVAULT_PASSWORD", "pw")
    assert cv("-r", repo, "init", "--encrypt").code == 0
    r = cv("-r", repo, "backup", "--db", db, "--dataroot", dataroot, "--all", "--jobs", "2",
           "--json")
    assert r.code == 0, r.err
    assert {o["outcome"] for o in json.loads(r.out)} == {"stored"}
    assert len(json.loads(r.out)) == len(site["courses"]) == 2
    assert cv("-r", repo, "check", "--read-data").code == 0


def test_forget_and_prune_keep_an_encrypted_repository_whole(
    cv: Cv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forget (which finds a series by its keyed ref) and prune (which
    repacks sealed packs) leave every kept snapshot exporting exactly."""
    repo = tmp_path / "repo"
    monkeypatch.setenv("COURSEVAULT_NEW_PASSWORD", "pw")
    monkeypatch.setenv("COURSEVAULT_PASSWORD", "pw")
    assert cv("-r", repo, "init", "--encrypt").code == 0
    archives = sorted(CORPUS_DIR.glob("*.mbz"))[:3]
    for night, archive in enumerate(archives):
        r = cv("-r", repo, "ingest", archive, "--course", "one", "--time",
               f"2026-11-0{night + 1}T02:00:00Z")
        assert r.code == 0, r.err
    kept = archives[-1]
    assert cv("-r", repo, "forget", "one", "--keep-last", "1").code == 0
    assert cv("-r", repo, "prune").code == 0
    assert [s["time"][:10] for s in json.loads(cv("-r", repo, "snapshots", "--json").out)] \
        == ["2026-11-03"]
    assert cv("-r", repo, "check", "--read-data").code == 0
    out = tmp_path / "kept.mbz"
    assert cv("-r", repo, "export", "one@latest", "-o", out).code == 0
    assert logical(read_members(out)) == logical(read_members(kept))


def test_key_commands_look_at_the_repository_before_asking_a_passphrase(
    cv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They demanded a passphrase first: exit 12 'the repository is
    encrypted' for a plain repository and for none at all."""
    monkeypatch.delenv("COURSEVAULT_PASSWORD", raising=False)
    monkeypatch.delenv("COURSEVAULT_PASSWORD_FILE", raising=False)
    plain = tmp_path / "plain"
    assert cv("init", plain).code == 0
    r = cv("init", tmp_path / "hub", "--encrypt", "--keys-from", plain)  # no passphrase asked
    assert r.code == 2 and "is not encrypted" in r.err, r
    for command in (["key", "list"], ["key", "add"], ["key", "passwd"], ["key", "remove", "x"]):
        r = cv("-r", plain, *command)
        assert r.code == 2 and "is not encrypted" in r.err, (command, r)
        r = cv("-r", tmp_path / "none", *command)
        assert r.code == 10 and "no repository" in r.err, (command, r)


def test_a_passphrase_variable_that_is_not_utf8_is_its_bytes(
    cv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'café' typed in a Latin-1 locale: an internal error (UnicodeEncodeError)
    where the same bytes in a --password-file worked."""
    latin1 = os.fsdecode("café".encode("latin-1"))
    monkeypatch.setenv("COURSEVAULT_NEW_PASSWORD", latin1)
    monkeypatch.setenv("COURSEVAULT_PASSWORD", latin1)
    sealed = tmp_path / "sealed"
    assert cv("init", sealed, "--encrypt").code == 0
    (tmp_path / "pw").write_bytes("café".encode("latin-1"))
    monkeypatch.delenv("COURSEVAULT_PASSWORD")
    r = cv("--password-file", tmp_path / "pw", "-r", sealed, "key", "list")
    assert r.code == 0, r.err


def test_key_passwd_asks_for_the_new_passphrase_even_with_a_password_file(
    cv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With COURSEVAULT_PASSWORD_FILE set, as the guide sets it, `key passwd`
    on a terminal took the current passphrase from the file as the new one
    (twice, so the check agreed), said 'passphrase changed' and changed
    nothing: the old one still opened the repository."""
    import getpass
    import sys

    monkeypatch.delenv("COURSEVAULT_PASSWORD", raising=False)
    monkeypatch.setenv("COURSEVAULT_NEW_PASSWORD", "old one")
    sealed = tmp_path / "sealed"
    assert cv("init", sealed, "--encrypt").code == 0
    monkeypatch.delenv("COURSEVAULT_NEW_PASSWORD")
    (tmp_path / "old").write_text("old one\n")
    monkeypatch.setenv("COURSEVAULT_PASSWORD_FILE", str(tmp_path / "old"))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(getpass, "getpass", lambda _prompt="": "new one")
    assert cv("-r", sealed, "key", "passwd").code == 0
    assert cv("-r", sealed, "snapshots").code == 12  # the file's passphrase opens nothing now
    (tmp_path / "new").write_text("new one\n")
    monkeypatch.setenv("COURSEVAULT_PASSWORD_FILE", str(tmp_path / "new"))
    assert cv("-r", sealed, "snapshots").code == 0


def test_a_damaged_key_slot_locks_out_no_other_passphrase(
    cv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """unlock raised at the first unreadable slot: the second passphrase the
    guide says to keep opened nothing, and `key remove` of the damaged slot
    failed the same way.  A config that is not JSON was an internal error
    (JSONDecodeError) in the key commands."""
    monkeypatch.delenv("COURSEVAULT_PASSWORD", raising=False)
    (tmp_path / "pw1").write_text("first\n")
    (tmp_path / "pw2").write_text("second\n")
    sealed = tmp_path / "sealed"
    assert cv("init", sealed, "--encrypt", "--new-password-file", tmp_path / "pw1").code == 0
    assert cv("--password-file", tmp_path / "pw1", "-r", sealed, "key", "add",
              "--new-password-file", tmp_path / "pw2").code == 0
    config = json.loads((sealed / "config").read_text())
    first = config["encryption"]["slots"][0]
    first["salt"] = "g" + first["salt"][1:]
    (sealed / "config").write_text(json.dumps(config))
    second = ("--password-file", tmp_path / "pw2", "-r", sealed)
    assert cv(*second, "snapshots").code == 0
    assert cv(*second, "key", "remove", first["id"]).code == 0
    r = cv("--password-file", tmp_path / "pw1", "-r", sealed, "snapshots")
    assert r.code == 12  # its slot is gone now
    (sealed / "config").write_text("{not json")
    r = cv(*second, "key", "list")
    assert r.code == 1 and "config" in r.err and "is unreadable" in r.err, r.err


def test_a_passphrase_variable_is_utf8_whatever_the_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    """Taken as os.fsencode(), a Latin-1 locale's 'café' became Latin-1
    bytes: no longer the passphrase earlier versions (and the terminal,
    whose getpass text is encoded as UTF-8) made the repository with."""
    from coursevault.cli import base

    monkeypatch.setattr(base.os, "fsencode", lambda text: text.encode("latin-1"))  # that locale
    monkeypatch.setenv("COURSEVAULT_PASSWORD", "café")
    assert base.env_passphrase("COURSEVAULT_PASSWORD") == "café".encode()
    monkeypatch.undo()
    monkeypatch.setenv("COURSEVAULT_PASSWORD", os.fsdecode(b"caf\xe9"))  # not UTF-8: its bytes
    assert base.env_passphrase("COURSEVAULT_PASSWORD") == b"caf\xe9"
