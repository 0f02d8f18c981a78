"""AWS credentials from botocore's own chain (a profile in a shared credentials file,
with a session token), resolved by the keeper's thread, never on the request path; and
a backend whose credentials cannot be found answering 503 with the reason."""

from __future__ import annotations

import threading

import openai
import pytest

from tests.backends.aws_kit import cloud
from tests.conftest import url_of
from tests.fakes import aws_sigv4
from tests.fakes import bedrock as fake

pytest.importorskip("botocore")


async def test_a_profile_with_a_session_token(aiohttp_server, tmp_path, monkeypatch):
    creds = tmp_path / "credentials"
    creds.write_text(f"[eldric-test]\naws_access_key_id = {aws_sigv4.ACCESS_KEY}\n"
                     f"aws_secret_access_key = {aws_sigv4.SECRET_KEY}\n"
                     "aws_session_token = FwoGZXIvYXdzEXAMPLETOKEN\n")
    (tmp_path / "config").write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    server = await aiohttp_server(fake.make_app())
    row = {"name": "profiled", "type": "bedrock", "url": url_of(server),
           "options": {"region": fake.REGION, "profile": "eldric-test"}}
    async with cloud(tmp_path, row) as (client, _):
        # the model list came signed with the profile's credentials
        assert [m.id async for m in client.models.list()] == [fake.MODEL]
        assert any(t.name == "aws-credentials-profiled" for t in threading.enumerate())
        reply = await client.chat.completions.create(
            model=fake.MODEL, messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Hello from Bedrock."
        headers = server.app[fake.KNOBS].requests[-1]["headers"]
        assert headers["X-Amz-Security-Token"] == "FwoGZXIvYXdzEXAMPLETOKEN"
        assert "x-amz-security-token" in headers["Authorization"]  # signed too


async def test_no_credentials_is_a_503_naming_why(aiohttp_server, tmp_path, monkeypatch):
    (tmp_path / "empty").write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "empty"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "empty"))
    server = await aiohttp_server(fake.make_app())
    row = {"name": "nocreds", "type": "bedrock", "url": url_of(server),
           "options": {"region": fake.REGION, "profile": "missing", "models": [fake.MODEL]}}
    async with cloud(tmp_path, row) as (client, _):
        with pytest.raises(openai.InternalServerError) as down:
            await client.chat.completions.create(
                model=fake.MODEL, messages=[{"role": "user", "content": "hi"}])
        assert down.value.status_code == 503
        assert "nocreds: no AWS credentials" in down.value.message
        assert "ProfileNotFound" in down.value.message
    assert server.app[fake.KNOBS].requests == []  # nothing unsigned was sent


def test_without_botocore_the_table_loads_and_signing_is_a_503(monkeypatch):
    import sys
    from types import SimpleNamespace

    from eldric.backends import auth_aws
    from eldric.backends.table import adapters
    from eldric.errors import UpstreamFailure

    monkeypatch.setitem(sys.modules, "botocore", None)  # as if the extra were missing
    assert not auth_aws.available()
    reach = SimpleNamespace(name="b", url="https://bedrock-runtime.eu-west-1.amazonaws.com",
                            key=None, options={}, extra_headers={},
                            state=SimpleNamespace(id="backend:b"))
    bedrock = adapters()["bedrock"]
    with pytest.raises(UpstreamFailure) as failed:
        bedrock.sign(reach, "POST", reach.url + "/model/m/converse", {}, b"{}")
    assert failed.value.status == 503 and "eldric[aws]" in failed.value.message
    # the model list is at the control plane of the URL's region
    assert bedrock.models(reach).url == "https://bedrock.eu-west-1.amazonaws.com/foundation-models"
    assert auth_aws.region_of(reach.url, {}) == "eu-west-1"
    assert auth_aws.region_of("https://runtime.sagemaker.ap-south-1.amazonaws.com", {}) \
        == "ap-south-1"
