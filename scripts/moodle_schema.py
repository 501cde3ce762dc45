"""Write src/coursevault/moodledb/schema45.txt from a loaded Moodle site's PostgreSQL schema.

Moodle's install.xml files are the authority for its tables, but they are
spread over ~400 plugin folders and need Moodle's XMLDB rules to read;
PostgreSQL is where Moodle's installer wrote exactly what they mean (bigint
ids, varchar lengths, numeric(p,s), nullability, defaults, index names).  So
the schema coursevault ships is read back from the reference site's database
(../shared/moodle-site/site.pgsql.zst, Moodle 4.5) and kept as a small text
file that ``coursevault.moodledb.schema`` turns into SQLAlchemy tables.

    createdb -h 127.0.0.1 -U postgres cv_ref
    zstd -dc ../shared/moodle-site/site.pgsql.zst | psql -h 127.0.0.1 -U postgres -q -d cv_ref
    .venv/bin/python scripts/moodle_schema.py postgresql+psycopg://postgres@127.0.0.1/cv_ref

The format (one table a block, names without the ``mdl_`` prefix) is
described in the header the script writes.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import sqlalchemy as sa

OUT = Path(__file__).resolve().parents[1] / "src" / "coursevault" / "moodledb" / "schema45.txt"
HEADER = """\
# Moodle 4.5 tables (2024100705.01), read from the reference site's PostgreSQL
# schema by scripts/moodle_schema.py: do not edit, run it again.
# A table:   "table NAME PRIMARY-KEY-NAME [noseq]" (names without the table
#            prefix; noseq: id is a bigint key the code gives, not a serial)
# A column:  " NAME TYPE NULL [DEFAULT]": TYPE I2 smallint, I4 integer,
#            I8 bigint, Cn varchar(n), X text, Np,s numeric(p,s), F4 real,
#            F8 double precision; NULL ! for NOT NULL, ? for nullable;
#            DEFAULT a number or a 'quoted string' (id is always the serial key)
# An index:  " @ix NAME COLUMN,..." or " @ux NAME COLUMN,..." (unique)
"""


def type_code(column: dict[str, object]) -> str:
    """The compact code of a reflected PostgreSQL column type."""
    t = column["type"]
    name = type(t).__name__.upper()
    if name == "BIGINT":
        return "I8"
    if name == "INTEGER":
        return "I4"
    if name == "SMALLINT":
        return "I2"
    if name == "VARCHAR":
        return f"C{t.length}"  # type: ignore[attr-defined]
    if name == "TEXT":
        return "X"
    if name == "NUMERIC":
        return f"N{t.precision},{t.scale}"  # type: ignore[attr-defined]
    if name == "REAL":
        return "F4"
    if name in ("DOUBLE_PRECISION", "DOUBLE"):
        return "F8"
    raise SystemExit(f"unexpected type {t!r} of {column['name']}")


def default_code(default: str | None) -> str:
    """A PostgreSQL default expression as the file writes it ('' or 0, no casts)."""
    if default is None:
        return ""
    text = re.sub(r"::[a-z ]+$", "", default.strip())
    if text.startswith("("):
        text = text.strip("()")
    quoted_number = re.fullmatch(r"'-?[0-9.]+'", text) is not None
    if quoted_number and "::" in default and not default.endswith("character varying"):
        text = text.strip("'")  # '-1'::integer is the number -1
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", help="SQLAlchemy URL of the loaded reference database")
    parser.add_argument("--prefix", default="mdl_")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    engine = sa.create_engine(args.url)
    inspector = sa.inspect(engine)
    columns = inspector.get_multi_columns()
    pks = inspector.get_multi_pk_constraint()
    indexes = inspector.get_multi_indexes()
    lines = [HEADER]
    n = len(args.prefix)
    for key in sorted(columns, key=lambda k: k[1]):
        table = key[1]
        if not table.startswith(args.prefix):
            continue
        pk = pks[key]
        if pk["constrained_columns"] != ["id"]:
            raise SystemExit(f"{table}: primary key is not id")
        lines.append(f"table {table[n:]} {pk['name'][n:]}")
        for col in columns[key]:
            if col["name"] == "id":
                if type_code(col) != "I8":
                    raise SystemExit(f"{table}.id is not a bigint")
                if "nextval" not in (col["default"] or ""):
                    lines[-1] += " noseq"  # install.xml's SEQUENCE="false" (context_temp)
                continue
            null = "?" if col["nullable"] else "!"
            default = default_code(col["default"])
            lines.append(f" {col['name']} {type_code(col)} {null} {default}".rstrip())
        for ix in sorted(indexes[key], key=lambda i: str(i["name"])):
            if None in ix["column_names"]:
                # search_simpledb's full-text indexes: PostgreSQL-only, made by
                # its install.php rather than install.xml, read by no backup
                continue
            kind = "ux" if ix["unique"] else "ix"
            cols = ",".join(str(c) for c in ix["column_names"])
            lines.append(f" @{kind} {str(ix['name'])[n:]} {cols}")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out} ({len(lines)} lines)", file=sys.stderr)


if __name__ == "__main__":
    main()
