"""Plugins come in through entry points, coursevault's own as a third
party's would (issue 21): a package installed beside coursevault that
declares ``coursevault.backup.activities`` is used without any change to
coursevault, and a course holding a module nobody defines is backed up
without it, saying so."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from coursevault.structure import registry


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    registry._group.cache_clear()
    yield
    registry._group.cache_clear()


def _install(site: Path, name: str, module: str, entry: str) -> None:
    """A minimal installed distribution: a module and its dist-info."""
    (site / f"{name}.py").write_text(module)
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry)


def test_a_third_party_activity_registers_through_an_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None
) -> None:
    _install(
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
    assert sys.modules["cv_mod_certificate"].PLUGIN is found["certificate"]


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
