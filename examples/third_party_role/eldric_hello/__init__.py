"""An example third-party role. `pip install ./examples/third_party_role`, then
`eldric --role hello --greeting hi` (or `eldric --role worker,hello`)."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web

from eldric import keys
from eldric.config import RoleConfig, flag_meta
from eldric.registry import Role


class HelloConfig(RoleConfig, kw_only=True, forbid_unknown_fields=True):
    # Every field is a file key, an ELDRIC_HELLO_* variable and a flag (--greeting).
    greeting: Annotated[str, flag_meta("what GET /hello answers")] = "hello"


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"greeting": request.app[keys.CONFIG].greeting,
                              "request_id": request[keys.HOP].request_id})


def build(app: web.Application, cfg: HelloConfig) -> None:
    # /health, /api/v1/health and /metrics are already there, from the bus.
    app.router.add_get("/hello", hello)


ROLE = Role(name="hello", port=8999, config=HelloConfig, build=build,
            description="says hello", in_all=False)
