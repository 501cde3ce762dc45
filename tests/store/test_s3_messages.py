"""What an S3 failure says (store/s3backend.py): the request and key, and
never a password written into the endpoint URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import EndpointConnectionError

from coursevault.errors import EXIT_BAD_INPUT, BackendError
from coursevault.store.s3backend import S3Backend, S3Location


def test_an_unreachable_endpoint_is_named_without_its_password() -> None:
    backend = S3Backend(S3Location.parse("s3://bucket/repo"), client=object())

    def refused() -> None:
        raise EndpointConnectionError(endpoint_url="http://user:s3cret@127.0.0.1:1/bucket/repo/config")

    with pytest.raises(BackendError) as caught:
        backend._call("GetObject", "config", refused)
    said = str(caught.value)
    assert "s3cret" not in said and "http://user:***@127.0.0.1:1/" in said
    assert said.startswith("S3 GetObject s3://bucket/repo/config:")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        # an internal error (botocore's ValueError)
        (["--endpoint-url", "notaurl", "-r", "s3://bucket/x", "snapshots"],
         "--endpoint-url notaurl: Invalid endpoint"),
        # 0 was taken for the default
        (["--s3-connections", "0", "-r", "s3://bucket/x", "snapshots"],
         "--s3-connections must be 1 or more, not 0"),
        # botocore's two regular expressions, on one line of 400 characters
        (["-r", "s3://bad bucket/x", "snapshots"], "a bucket name is 1-255 letters"),
    ],
    ids=["endpoint", "connections", "bucket"],
)
def test_an_s3_option_that_cannot_be_is_one_line_exit_2(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from coursevault.cli.app import main

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    capsys.readouterr()
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err and "internal error" not in err, err


def test_a_cache_dir_that_is_a_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from coursevault.cli.app import main

    assert main(["init", "-r", str(tmp_path / "repo")]) == 0
    (tmp_path / "afile").write_text("")
    capsys.readouterr()
    assert main(["snapshots", "-r", str(tmp_path / "repo"), "--cache-dir",
                 str(tmp_path / "afile")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot make the cache folder" in err, err
