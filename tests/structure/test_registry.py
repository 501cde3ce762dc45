"""Plugins come in through entry points, coursevault's own as a third
party's would (issue 21): a package installed beside coursevault that
declares ``coursevault.backup.activities`` is used without any change to
coursevault, and a course holding a module nobody defines is backed up
without it, saying so."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import install_distribution

from coursevault.structure import registry


def test_a_third_party_activity_registers_through_an_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None
) -> None:
    install_distribution(
        tmp_path,
        "cv_mod_certificate",
        textwrap.dedent("""
        from coursevault.structure.elements import Nested, Param, Table
        from coursevault.structure.registry import Plugin, Step

        def structure(ctx):
            return Nested("certificate", attrs=("id",), fields=("name",),
                          source=Table("certificate", {"id": Param("activityid")}))

        PLUGIN = Plugin("certificate", steps=lambda ctx: [Step("certificate.xml", build=structure)])
    """),
        "[coursevault.backup.activities]\ncertificate = cv_mod_certificate:PLUGIN\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = registry.activities()
    assert found["certificate"].name == "certificate"
    assert {"assign", "forum", "quiz", "choice"} <= set(found)  # coursevault's own, alike
    plugin = sys.modules["cv_mod_certificate"].PLUGIN  # another package's: guarded, the same
    assert found["certificate"].name == plugin.name
    assert [s.member for s in found["certificate"].steps(None)] == ["certificate.xml"]


def test_every_shipped_definition_is_a_plugin(fresh_registry: None) -> None:
    for group in (registry.activities(), registry.blocks(), registry.subplugins("")):
        for name, plugin in group.items():
            assert isinstance(plugin, registry.Plugin), name


def test_a_shipped_definitions_encoder_is_coursevaults_own(fresh_registry: None) -> None:
    """The transformer imports a coursevault definition only when text holds
    the site's address (definitions/run.py, _EncoderSlot), which is right
    only if its encoder is one of coursevault's own, that rewrite nothing else."""
    for group in (registry.activities(), registry.blocks()):
        for name in group:
            if group.module(name).startswith("coursevault.definitions."):
                encode = group[name].encode_links
                assert encode is None or encode.__module__.startswith("coursevault.definitions.")


BROKEN = {
    "cv_mod_gizmo": ("import cv_missing_dependency\n", "gizmo = cv_mod_gizmo:PLUGIN"),
    "cv_mod_nope": ("PLUGIN = 'not a plugin'\n", "nope = cv_mod_nope:PLUGIN"),
    "cv_mod_raises": (textwrap.dedent("""
        from coursevault.structure.registry import Plugin, Step

        def build(ctx):
            raise RuntimeError("deliberate failure in build")

        PLUGIN = Plugin("raises", steps=lambda ctx: [Step("raises.xml", build=build)])
    """), "raises = cv_mod_raises:PLUGIN"),
    "cv_mod_evil": (textwrap.dedent("""
        from coursevault.structure.registry import Plugin, Step

        PLUGIN = Plugin("evil", steps=lambda ctx: [Step("../../evil.xml", write=lambda c: b"")])
    """), "evil = cv_mod_evil:PLUGIN"),
    "cv_mod_twice": (textwrap.dedent("""
        from coursevault.structure.registry import Plugin, Step

        PLUGIN = Plugin("twice", steps=lambda ctx: [Step("a.xml", write=lambda c: b""),
                                                    Step("a.xml", write=lambda c: b"")])
    """), "twice = cv_mod_twice:PLUGIN"),
    "cv_mod_page": ("PLUGIN = None\n", "page = cv_mod_page:PLUGIN"),
}


def test_a_third_party_plugin_s_mistakes_are_its_own_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None
) -> None:
    """An adversarial pass: a plugin that failed to import stopped every
    database backup with "internal error: ModuleNotFoundError"; one whose
    build raised ended the night; member names like ``../../evil.xml``
    went into the archive; a second ``page`` was silently ignored (or not,
    by install order).  Each is now a PluginError naming the plugin, which
    fails only the course that needs it (exit 2)."""
    from coursevault.structure.pluginguard import PluginError

    for name, (module, entry) in BROKEN.items():
        install_distribution(tmp_path, name, module, f"[coursevault.backup.activities]\n{entry}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = registry.activities()
    cases = {
        "gizmo": "cannot be loaded: ModuleNotFoundError: No module named 'cv_missing_dependency'",
        "nope": "is not a coursevault Plugin (str)",
    }
    for name, said in cases.items():
        with pytest.raises(PluginError, match="plugin cv_mod_") as caught:
            found[name]
        assert said in str(caught.value) and PluginError.exit_code == 2
    [step] = found["raises"].steps(None)
    with pytest.raises(PluginError, match=re.escape("raises.xml failed: RuntimeError: deliberate")):
        step.build(None)
    with pytest.raises(PluginError, match=re.escape("'../../evil.xml', not a plain relative path")):
        found["evil"].steps(None)
    with pytest.raises(PluginError, match=re.escape("writes a.xml twice")):
        found["twice"].steps(None)
    assert found["page"].name == "page" and found.module("page").startswith("coursevault.")
    assert any("cv_mod_page:PLUGIN" in c and "'page'" in c for c in registry.conflicts())
