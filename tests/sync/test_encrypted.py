"""Sync of encrypted repositories (issue 25, "sync between two repositories
that share the id key copies objects as they are"): an empty destination
is made with the source's keys and passphrases, every file sealed anew
there; a destination that computes ids otherwise is refused, one line,
exit 2; a wrong destination passphrase is exit 12."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from helpers import CORPUS

from coursevault.cli.app import main

ARCHIVES = [p for p in CORPUS if p.stat().st_size < 200_000][:3]


def cv(cache: Path, *argv: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["--cache-dir", str(cache), *map(str, argv)])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("COURSEVAULT_NEW_PASSWORD", "site pw")
    monkeypatch.setenv("COURSEVAULT_PASSWORD", "site pw")
    return monkeypatch


def _exports(cache: Path, repo: Path, tmp: Path) -> dict[str, bytes]:
    code, out, _ = cv(cache, "snapshots", "-r", repo, "--json")
    assert code == 0
    found = {}
    for snap in json.loads(out):
        target = tmp / f"{snap['id']}.mbz"
        assert cv(cache, "export", "-r", repo, snap["id"], "-o", target)[0] == 0
        found[snap["id"]] = target.read_bytes()
    return found


def test_an_encrypted_repository_syncs_into_a_copy_sharing_its_keys(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    src, dst, cache = tmp_path / "src", tmp_path / "dst", tmp_path / "cache"
    assert cv(cache, "init", src, "--encrypt")[0] == 0
    assert cv(cache, "ingest", "-r", src, *ARCHIVES)[0] == 0
    code, out, err = cv(cache, "sync", src, dst, "--json")
    assert code == 0, err
    assert json.loads(out)["snapshots"] == len(ARCHIVES)
    assert json.loads((dst / "config").read_text())["version"] == 5  # sealed, records fanned out
    assert _exports(cache, dst, tmp_path) == _exports(cache, src, tmp_path)
    code, out, _err = cv(cache, "check", "-r", dst, "--read-data")
    assert code == 0 and "no errors, 0 warnings" in out, out  # its journal sealed too
    sealed_src = {p.relative_to(src): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    for path in (p for p in dst.rglob("*") if p.is_file() and p.name != "config"):
        rel = path.relative_to(dst)
        if rel in sealed_src and not str(rel).startswith("locks") and not rel.name.startswith("."):
            assert path.read_bytes() != sealed_src[rel], rel  # sealed anew: fresh salt
    env.setenv("COURSEVAULT_PASSWORD", "not it")
    assert cv(cache, "snapshots", "-r", dst)[0] == 12


def test_destinations_that_compute_ids_otherwise_are_refused(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    sealed, other, plain = tmp_path / "sealed", tmp_path / "other", tmp_path / "plain"
    for repo, extra in ((sealed, ["--encrypt"]), (other, ["--encrypt"]), (plain, [])):
        assert cv(cache, "init", repo, *extra)[0] == 0
    assert cv(cache, "ingest", "-r", sealed, ARCHIVES[0])[0] == 0
    assert cv(cache, "ingest", "-r", plain, ARCHIVES[0])[0] == 0
    for src, dst, words in (
        (sealed, other, "another id key"),
        (sealed, plain, "only the source"),
        (plain, sealed, "only the destination"),
    ):
        code, _out, err = cv(cache, "sync", src, dst)
        assert code == 2 and err.count("\n") == 1 and words in err, (src, dst, err)
    pw = tmp_path / "pw"
    pw.write_text("wrong\n")
    code, _out, err = cv(cache, "sync", sealed, other, "--to-password-file", pw)
    assert code == 12 and "wrong passphrase" in err, err
    code, out, _err = cv(cache, "snapshots", "-r", other, "--json")
    assert code == 0 and json.loads(out) == []  # nothing written by the refusals


def test_a_repository_of_its_own_keys_syncs_when_it_shares_the_id_key(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """init --encrypt --keys-from SRC: another data key and passphrase, the
    source's id key -- sync copies the objects as they are, each file sealed
    anew under the destination's key, which the source's cannot open."""
    src, dst, cache = tmp_path / "src", tmp_path / "dst", tmp_path / "cache"
    assert cv(cache, "init", src, "--encrypt")[0] == 0
    assert cv(cache, "ingest", "-r", src, *ARCHIVES)[0] == 0
    env.setenv("COURSEVAULT_NEW_PASSWORD", "hub pw")  # COURSEVAULT_PASSWORD opens SRC
    assert cv(cache, "init", dst, "--encrypt", "--keys-from", src)[0] == 0
    pw = tmp_path / "hub.pw"
    pw.write_text("hub pw\n")
    code, _out, err = cv(cache, "sync", src, dst, "--to-password-file", pw)
    assert code == 0, err
    exported_src = _exports(cache, src, tmp_path)
    env.setenv("COURSEVAULT_PASSWORD", "hub pw")
    assert _exports(cache, dst, tmp_path) == exported_src  # same ids, same archives
    assert cv(cache, "check", "-r", dst, "--read-data")[0] == 0
    src_slots = json.loads((src / "config").read_text())["encryption"]["slots"]
    dst_slots = json.loads((dst / "config").read_text())["encryption"]["slots"]
    assert {s["sealed"] for s in src_slots}.isdisjoint(s["sealed"] for s in dst_slots)
    env.setenv("COURSEVAULT_PASSWORD", "site pw")
    assert cv(cache, "snapshots", "-r", dst)[0] == 12  # the source's passphrase opens no slot
    code, _out, err = cv(cache, "init", tmp_path / "x", "--keys-from", src)
    assert code == 2 and "--encrypt" in err


def test_a_new_destination_is_not_made_under_a_passphrase_that_cannot_open_it(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An absent destination is made with the source's key slots: a
    --to-password-file that opens none of them is refused (exit 12, naming
    the destination) before anything is written -- it once left a config
    alone there, a repository without a journal that the next sync took as
    made already."""
    src, dst, cache = tmp_path / "src", tmp_path / "dst", tmp_path / "cache"
    assert cv(cache, "init", src, "--encrypt")[0] == 0
    assert cv(cache, "ingest", "-r", src, ARCHIVES[0])[0] == 0
    pw = tmp_path / "pw"
    pw.write_text("wrong\n")
    code, _out, err = cv(cache, "sync", src, dst, "--to-password-file", pw)
    assert code == 12 and err.count("\n") == 1, err
    assert "wrong passphrase" in err and str(dst) in err, err
    assert not dst.exists()
    code, _out, err = cv(cache, "sync", src, dst)
    assert code == 0, err
    code, out, _err = cv(cache, "check", "-r", dst)
    assert code == 0 and "no errors, 0 warnings" in out, out


def test_sync_makes_no_repository_over_files_nor_ignores_a_destination_passphrase(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An adversarial pass: sync made its destination in a folder that held
    files -- over an encrypted repository whose config was lost it wrote a
    plain config, and every sealed file then read as corrupt -- where init
    refuses; and --to-password-file for a plain destination was ignored."""
    import shutil

    src, enc, cache = tmp_path / "src", tmp_path / "enc", tmp_path / "cache"
    assert cv(cache, "init", src)[0] == 0
    assert cv(cache, "ingest", "-r", src, ARCHIVES[0])[0] == 0
    assert cv(cache, "init", enc, "--encrypt")[0] == 0
    assert cv(cache, "ingest", "-r", enc, ARCHIVES[1])[0] == 0
    lost = tmp_path / "lost"
    shutil.copytree(enc, lost)
    (lost / "config").unlink()
    before = sorted(p.relative_to(lost) for p in lost.rglob("*"))
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    for dst in (lost, notes):
        code, _out, err = cv(cache, "sync", src, dst)
        assert code == 2 and "is not empty" in err and err.count("\n") == 1, err
        assert not (dst / "config").exists()
    assert sorted(p.relative_to(lost) for p in lost.rglob("*")) == before
    pw = tmp_path / "pw"
    pw.write_text("site pw\n")
    code, _out, err = cv(cache, "sync", src, tmp_path / "new", "--to-password-file", pw)
    assert code == 2 and "is not encrypted" in err, err
    assert not (tmp_path / "new").exists()
