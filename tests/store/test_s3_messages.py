"""What an S3 failure says (store/s3backend.py): the request and key, and
never a password written into the endpoint URL."""

from __future__ import annotations

import pytest
from botocore.exceptions import EndpointConnectionError

from coursevault.errors import BackendError
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
