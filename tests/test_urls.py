"""Database URLs in messages: the password never shown (coursevault/urls.py)."""

from __future__ import annotations

import pytest

from coursevault.urls import refuse_unencoded_at, shown_url, unencoded_at


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:secret@db.example/site", "postgresql://u:***@db.example/site"),
        ("postgresql+psycopg://u:se@cr:et@10.0.0.1:5432/m", "postgresql+psycopg://u:***@10.0.0.1:5432/m"),
        ("mysql+pymysql://u:p%40ss@h/m?charset=utf8mb4", "mysql+pymysql://u:***@h/m?charset=utf8mb4"),
        ("postgresql://u@h/m?options=a@b", "postgresql://u@h/m?options=a@b"),
        ("postgresql://h/m", "postgresql://h/m"),
        ("sqlite:////srv/site.db", "sqlite:////srv/site.db"),
        ("not a url", "not a url"),
        ("postgresql://u@h/m?password=s3cret&sslmode=x", "postgresql://u@h/m?password=***&sslmode=x"),
        ("mysql+pymysql://u:a@h/m?PASSWD=b", "mysql+pymysql://u:***@h/m?PASSWD=***"),
    ],
)
def test_the_password_is_hidden_whatever_it_holds(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_a_bare_at_in_the_credentials_is_refused_with_the_way_to_write_it() -> None:
    assert unencoded_at("postgresql://u:se@cret@h/m")
    assert unencoded_at("postgresql://me@example.org:pw@h/m")
    assert not unencoded_at("postgresql://u:se%40cret@h/m")
    assert not unencoded_at("postgresql://u@h/m?x=a@b")
    message = refuse_unencoded_at("postgresql://u:se@cret@h/m")
    assert message is not None and "%40" in message and "cret" not in message
    assert refuse_unencoded_at("postgresql://u:pw@h/m") is None


def test_a_port_that_is_not_a_number_is_a_site_error_naming_the_url() -> None:
    from coursevault.errors import SiteError
    from coursevault.moodledb.site import open_engine

    with pytest.raises(SiteError, match="is not a URL") as caught:
        open_engine("postgresql+psycopg://u:secret@localhost:notaport/moodle")
    assert "secret" not in str(caught.value)


def test_a_site_is_described_without_a_query_password() -> None:
    from coursevault.moodledb.site import describe

    shown = describe("postgresql+psycopg://postgres@127.0.0.1:1/moodle?password=TopSecret123")
    assert "TopSecret123" not in shown and "password=***" in shown
