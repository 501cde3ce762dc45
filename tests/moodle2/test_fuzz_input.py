"""Damaged real archives, bytes cut, flipped, inserted or truncated at many
places (deterministic seeds, a bounded count): every outcome is either a
snapshot that exports exactly what was read, or the one-line refusal (exit 2)
naming the archive as given, with nothing left in the repository.  Never an
internal error, a traceback, or a leftover pack (``check`` ends clean)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from helpers import CORPUS, read_members, tar_stream
from refusals import assert_check_clean, repository_files

from coursevault.cli.app import main

ROUNDS = 40  # per archive: about 3 s each

ARCHIVES = {
    "zip": next(c for c in CORPUS if "moodle_28_quiz" in c.name),
    "tgz": next(c for c in CORPUS if "moodle_311_quiz" in c.name),
}


def damage(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One random damage; half of them hit the container's own structures
    (a zip's central directory at its end, a gzip header and trailer)."""
    if rng.random() < 0.5:
        pos = rng.randrange(len(data))
    elif rng.random() < 0.5:
        pos = rng.randrange(max(0, len(data) - 1024), len(data))
    else:
        pos = rng.randrange(0, 64)
    kind = rng.choice(["cut", "flip", "insert", "truncate"])
    if kind == "cut":
        n = rng.choice([1, 4, 100])
        return f"cut {n} at {pos}", data[:pos] + data[pos + n :]
    if kind == "flip":
        damaged = bytearray(data)
        damaged[pos] ^= 1 << rng.randrange(8)
        return f"flip at {pos}", bytes(damaged)
    if kind == "insert":
        extra = rng.randbytes(rng.choice([1, 100]))
        return f"insert {len(extra)} at {pos}", data[:pos] + extra + data[pos:]
    return f"truncate at {pos}", data[:pos]


@pytest.mark.parametrize("container", list(ARCHIVES))
def test_damaged_archives_are_stored_exactly_or_refused_cleanly(
    seeded_repo: Path, capsys: pytest.CaptureFixture[str], container: str
) -> None:
    source = ARCHIVES[container].read_bytes()
    Path("in").mkdir()
    outcomes = {"stored": 0, "refused": 0}
    for seed in range(ROUNDS):
        what, data = damage(source, random.Random(f"{container}-{seed}"))
        archive = f"in/{container}-{seed}.mbz"
        Path(archive).write_bytes(data)
        before = repository_files(seeded_repo)
        capsys.readouterr()
        code = main(["ingest", "-r", str(seeded_repo), "--json", archive])
        out, err = capsys.readouterr()
        context = f"seed {seed}, {what}: exit {code}: {err}"
        if code == 0:
            outcomes["stored"] += 1
            snapshot = json.loads(out)["snapshot"]
            assert main(["export", "-r", str(seeded_repo), "-o", "out.mbz", snapshot]) == 0
            assert read_members("out.mbz") == read_members(archive), context
            if container == "tgz":
                assert tar_stream("out.mbz") == tar_stream(archive), context
            continue
        outcomes["refused"] += 1
        assert code == 2, context
        assert err.count("\n") == 1 and err.startswith(f"coursevault: error: {archive}: "), context
        assert "internal error" not in err and "Traceback" not in err, context
        assert repository_files(seeded_repo) == before, context
    assert outcomes["refused"] > ROUNDS // 2  # the damage is real, mostly
    assert_check_clean(seeded_repo, capsys)
