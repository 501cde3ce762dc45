"""A database URL as the drivers take it: the scheme's other spelling, and
the options a driver refuses, said in one line (backup's and restore's
engines alike)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine

from coursevault.errors import SiteError


def canonical_url(url: URL) -> URL:
    """``postgres://`` (Heroku's, libpq's) as ``postgresql://``, which is
    what SQLAlchemy names the dialect."""
    scheme, plus, driver = url.drivername.partition("+")
    return url.set(drivername="postgresql" + plus + driver) if scheme == "postgres" else url


def refuse_bad_options(engine: Engine, where: str) -> None:
    """A URL option the driver does not take (``?foo=bar``, ``?ssl=true`` on
    PyMySQL) raised TypeError or AttributeError from inside the driver's
    connect: one line naming the database instead of an internal error."""

    @event.listens_for(engine, "do_connect")
    def connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except (TypeError, AttributeError, ValueError) as exc:
            raise SiteError(f"{where}: the database driver refused the URL's options "
                            f"({type(exc).__name__}: {exc})") from None
