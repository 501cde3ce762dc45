"""A third-party plugin's failure through ``backup --db`` (an adversarial
pass): one that cannot be imported stopped every backup of the site with
"internal error: ModuleNotFoundError", and one that raised ended the run
at the first course, naming nothing.  Now a plugin no course holds is a
warning, and one a course needs fails that course, named (exit 2); the
other courses go on."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import install_distribution

from coursevault.structure import registry

from .clirun import Result
from .twosite import two_course_site


def test_a_broken_plugin_fails_only_the_courses_that_need_it(
    cv: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    fresh_registry: None,
) -> None:
    _db, site, courses = two_course_site(tmp_path)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    install_distribution(plugins, "cv_mod_gizmo", "import cv_missing_dependency\n",
             "[coursevault.backup.activities]\ngizmo = cv_mod_gizmo:PLUGIN\n")
    monkeypatch.syspath_prepend(str(plugins))
    r = cv("backup", *site, "--all", "--json")  # no course holds a gizmo
    assert r.code == 0, r
    warned = [w for o in json.loads(r.out) for w in o["warnings"]]
    assert any("plugin cv_mod_gizmo:PLUGIN" in w and "cannot be loaded" in w for w in warned)

    # an assignment subplugin (every assignment asks for its part) that raises
    install_distribution(plugins, "cv_sub_evil", textwrap.dedent("""
        from coursevault.structure.registry import Plugin

        def part(ctx):
            raise RuntimeError("deliberate failure in its part")

        PLUGIN = Plugin("assignsubmission_evil", steps=lambda ctx: [],
                        extra={"submission": part})
    """), "[coursevault.backup.subplugins]\nassignsubmission_evil = cv_sub_evil:PLUGIN\n")
    registry._group.cache_clear()
    r = cv("backup", *site, "--course", courses[0], "--course", courses[1], "--json")
    assert r.code == 2 and "internal error" not in r.err, r
    failed = json.loads(r.out)
    assert [o["outcome"] for o in failed] == ["failed", "failed"]
    assert all(o["error"].startswith("plugin cv_sub_evil:PLUGIN") and
               "RuntimeError: deliberate failure" in o["error"] for o in failed), failed
    assert len(json.loads(cv("snapshots", "--json").out)) == 2  # the first run's only
