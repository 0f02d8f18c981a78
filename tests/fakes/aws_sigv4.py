"""What AWS does with a SigV4-signed request, for the fakes: the signature recomputed by
botocore from the request as it arrived (method, raw path and query, the signed headers,
the body), compared, and AWS's own 403 when it does not match
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html)."""

from __future__ import annotations

import asyncio
import datetime
import json
import re
from urllib.parse import quote, unquote

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                   r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")


def denied(message: str, error_type: str = "InvalidSignatureException") -> web.Response:
    return web.Response(status=403, body=json.dumps({"message": message}).encode(),
                        content_type="application/json",
                        headers={"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/"
                                                     "coral/com.amazon.coral.service/"})


def _as_aws_sees(request: web.Request) -> str:
    """The path as AWS canonicalises it before its own (second) encoding: each segment
    of what arrived decoded, then URI-encoded once (RFC 3986, ``-_.~`` kept), so that a
    ``:`` sent as it is and one sent as ``%3A`` are the same ``%3A`` (which botocore's
    signer encodes again: ``%253A``; botocore's own clients send ``%3A``). Reports of
    signatures over the raw ``:`` refused by Bedrock: litellm#14763, nolabs-ai/nono#1430,
    aws-amplify/amplify-flutter#5541."""
    path, _, query = request.raw_path.partition("?")
    path = "/".join(quote(unquote(seg), safe="-_.~") for seg in path.split("/"))
    return path + (f"?{query}" if query else "")


def check(request: web.Request, body: bytes, service: str, region: str,
          secrets: dict[str, str] | None = None) -> tuple[str, web.Response | None]:
    """(the access key id or "bearer:<token>", None) when the request is signed right;
    else (why, AWS's 403 reply)."""
    secrets = secrets or {ACCESS_KEY: SECRET_KEY}
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return "bearer:" + auth[7:], None
    m = _AUTH.match(auth)
    if not m:
        return "no signature", denied("Missing Authentication Token",
                                      "MissingAuthenticationTokenException")
    key_id, date, got_region, got_service, signed, signature = m.groups()
    if key_id not in secrets:
        return "unknown key", denied("The security token included in the request is invalid.",
                                     "UnrecognizedClientException")
    if (got_region, got_service) != (region, service):
        return "wrong scope", denied(f"Credential should be scoped to a valid region "
                                     f"({region}) and service ({service}).")
    amz_date = request.headers.get("X-Amz-Date", "")
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        return "no date", denied("X-Amz-Date is missing or malformed")
    if abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) > 300 \
            or amz_date[:8] != date:
        return "stale", denied("Signature expired")
    names = signed.split(";")
    if "host" not in names or "x-amz-date" not in names:
        return "unsigned host", denied("host and x-amz-date must be signed")
    headers = {}
    for name in names:
        if name not in request.headers:
            return f"missing {name}", denied(f"signed header {name} was not sent")
        headers[name] = request.headers[name]
    token = request.headers.get("X-Amz-Security-Token")
    req = AWSRequest(method=request.method, url=f"http://{request.host}{_as_aws_sees(request)}",
                     data=body, headers=headers)
    req.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(key_id, secrets[key_id], token), got_service, got_region)
    want = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
    if want != signature:
        return "bad signature", denied(
            "The request signature we calculated does not match the signature you "
            "provided. Check your AWS Secret Access Key and signing method.")
    return key_id, None


async def stream_reply(request: web.Request, headers: dict[str, str], writes: list[bytes],
                       count_cancel, *, delay: float = 0.0,  # type: ignore[no-untyped-def]
                       cut: bool = False) -> web.StreamResponse:
    """An event-stream reply written piece by piece (`delay` between pieces); `cut`
    closes the connection after the pieces instead of ending the body; the client
    leaving mid-way calls `count_cancel()`."""
    resp = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream",
                                       **headers})
    await resp.prepare(request)
    try:
        for piece in writes:
            await resp.write(piece)
            if delay:
                await asyncio.sleep(delay)
        if cut:
            assert request.transport is not None
            request.transport.close()
            return resp
    except asyncio.CancelledError:
        count_cancel()
        raise
    except ConnectionError:
        count_cancel()
        return resp
    await resp.write_eof()
    return resp
