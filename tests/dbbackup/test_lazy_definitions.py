"""A backup imports the definitions of the plugins its course holds, not of
every plugin installed (structure/registry.py PluginGroup,
definitions/run.py transformer, final_questions.py): gen_s (assignments, a
forum, pages, files; no question bank) must not load the quiz, the question
types or the other activities.  Run in a process of its own, as the
suite's other tests import everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .refsite import RefSite

PROBE = """
import json, sys
from coursevault.cli.app import main
code = main(sys.argv[1:])
loaded = sorted(m.rsplit(".", 1)[-1] for m in sys.modules
                if m.startswith("coursevault.definitions."))
print("LOADED " + json.dumps([code, loaded]))
"""


def test_a_course_backup_imports_only_the_definitions_it_needs(
    refsite: RefSite, tmp_path: Path
) -> None:
    if refsite.postgres_url is None:
        pytest.skip("the reference site is not loaded on PostgreSQL (scripts/refsite)")
    repo = tmp_path / "repo"
    args = ["init", str(repo)]
    subprocess.run([sys.executable, "-c", PROBE, *args], check=True, capture_output=True)
    backup = [
        "backup",
        "-r",
        str(repo),
        "--db",
        refsite.postgres_url,
        "--dataroot",
        str(refsite.dataroot),
        "--course",
        str(refsite.course("gen_s").id_on("postgres")),
        "--json",
    ]
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *backup],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "COURSEVAULT_CACHE": str(tmp_path / "cache")},
    )
    [line] = [x for x in out.stdout.splitlines() if x.startswith("LOADED ")]
    code, loaded = json.loads(line[len("LOADED ") :])
    assert code == 0, out.stderr
    assert {"mod_assign", "mod_forum", "mod_page", "mod_resource"} <= set(loaded)
    assert not {"mod_quiz", "mod_book", "mod_workshop", "mod_lesson", "question_usages"} & set(
        loaded
    )
    assert not [m for m in loaded if m.startswith("qtype_")], loaded
