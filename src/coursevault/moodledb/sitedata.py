"""What a demo site takes from the reference Moodle site (``site45.json``).

Written by ``scripts/moodle_site_data.py``: the site rows Moodle's installer
wrote (configuration with plugin versions and backup settings, modules,
blocks, standard roles, licences...) and, per table, real rows whose every
column a generated row starts from.  Starting from Moodle's own rows keeps
the columns nobody sets on purpose (formats, flags, serialised options) as
Moodle writes them, which a backup copies into its XML.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import Any

import sqlalchemy as sa

SITE_DATA_FILE = "site45.json"
Row = dict[str, Any]


@dataclass(frozen=True)
class SiteData:
    """The parsed file: ``site[table]`` rows to copy, ``templates[key]`` rows to start from."""

    site: dict[str, list[Row]]
    templates: dict[str, tuple[str, list[Row]]]

    @classmethod
    def load(cls) -> SiteData:
        text = resources.files(__package__).joinpath(SITE_DATA_FILE).read_text("utf-8")
        data = json.loads(text)
        site = {
            table: [dict(zip(block["columns"], row, strict=True)) for row in block["rows"]]
            for table, block in data["site"].items()
        }
        templates = {
            key: (block["table"], block["rows"]) for key, block in data["templates"].items()
        }
        return cls(site, templates)

    def table_of(self, key: str) -> str:
        return self.templates[key][0]

    def template(self, key: str, index: int = 0) -> Row:
        """A copy of a template row; ``key`` is a table or ``table:variant``."""
        return dict(self.templates[key][1][index])

    def template_rows(self, key: str) -> list[Row]:
        return [dict(r) for r in self.templates[key][1]]

    def row(self, key: str, **values: Any) -> Row:
        """The template row with ``values`` replacing columns, which must exist:
        a misspelt column would otherwise be silently ignored by the insert."""
        row = self.template(key)
        unknown = set(values) - set(row)
        if unknown:
            raise KeyError(f"{key} has no columns {sorted(unknown)}")
        row.update(values)
        return row


def typed_row(table: sa.Table, row: Row) -> Row:
    """Numbers kept as PostgreSQL printed them ("100.00000") become Decimals
    for numeric columns, which every driver binds as numbers."""
    out = dict(row)
    for name, value in row.items():
        kind = table.c[name].type
        if (
            isinstance(value, str)
            and isinstance(kind, sa.Numeric)
            and not isinstance(kind, sa.Float)
        ):
            out[name] = Decimal(value)
    return out
