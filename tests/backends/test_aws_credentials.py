"""AWS credentials from botocore's own chain (a profile in a shared credentials file,
with a session token), resolved in the loop's executor, never on the loop; and
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
        # no thread of its own per backend: the loop's executor did the I/O
        assert not any(t.name.startswith("aws-credentials") for t in threading.enumerate())
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


async def test_the_first_signing_does_not_block_the_loop(monkeypatch):
    """Resolving the chain takes its time (files, the instance metadata service): the
    loop goes on meanwhile, and the request is signed once it is done."""
    import asyncio
    import time
    from types import SimpleNamespace

    import botocore.session
    from botocore.credentials import Credentials

    from eldric.backends.table import adapters

    def slow_chain(self):  # type: ignore[no-untyped-def]
        time.sleep(0.5)  # the metadata service, slow
        return Credentials(aws_sigv4.ACCESS_KEY, aws_sigv4.SECRET_KEY)

    monkeypatch.setattr(botocore.session.Session, "get_credentials", slow_chain)
    for kind in ("bedrock", "sagemaker"):
        reach = SimpleNamespace(name=f"slow-{kind}", url="https://bedrock-runtime.us-east-1."
                                "amazonaws.com", key=None, options={"profile": "slow"},
                                extra_headers={}, state=SimpleNamespace(id=f"backend:{kind}"))
        adapter = adapters()[kind]
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        if adapter.ready is not None:  # as eldric.backends.call.open_native does
            await adapter.ready(reach)
        headers = adapter.sign(reach, "POST", reach.url + "/model/m/converse",
                               {"Content-Type": "application/json"}, b"{}")
        await asyncio.sleep(0.03)  # the ticker sees the gap, if there was one
        tick.cancel()
        assert headers["Authorization"].startswith("AWS4-HMAC-SHA256"), kind
        assert max(gaps) < 0.25, (kind, max(gaps))  # the loop was never held


@pytest.mark.parametrize(("row", "named"), [
    ({"type": "bedrock", "options": {"access_key_id": aws_sigv4.ACCESS_KEY}},
     "access_key_id and options.secret_access_key go together"),
    ({"type": "sagemaker", "options": {"access_key_id": aws_sigv4.ACCESS_KEY,
                                        "secret_access_key": aws_sigv4.SECRET_KEY}},
     "option models"),
    ({"type": "sagemaker-lmi", "options": {"region": 1, "models": ["e"]}}, "option region")])
async def test_credentials_and_endpoints_that_cannot_work_fail_at_start_up(tmp_path, row,
                                                                           named):
    """Half a key pair (else a 500 at each request), a SageMaker backend naming no
    endpoint (else it serves nothing, silently): a ConfigError naming the option."""
    from eldric import registry
    from eldric.errors import ConfigError
    from tests.conftest import run_role

    [role] = registry.resolve("cloud")
    with pytest.raises(ConfigError) as e:
        async with run_role(role, tmp_path, backends=[
                {"name": "aws", "url": "http://127.0.0.1:9", **row}]):
            pass
    assert named in str(e.value)


def test_without_botocore_a_backend_that_must_sign_fails_at_start_up(monkeypatch):
    """SageMaker is only ever signed, and credentials in a Bedrock backend's options
    need botocore: the install hint at start-up, not a 503 at each request. A Bedrock
    backend without credentials may still use an API key."""
    import sys

    from eldric.backends.table import adapters

    monkeypatch.setitem(sys.modules, "botocore", None)
    table = adapters()
    for kind, options in (("sagemaker", {"models": ["e"]}), ("sagemaker-lmi", {"models": ["e"]}),
                          ("bedrock", {"profile": "prod"})):
        with pytest.raises(ValueError, match=r"eldric\[aws\]"):
            table[kind].check(options, None)
    table["bedrock"].check({"region": "eu-west-1"}, "bedrock-api-key")  # an API key: no botocore
