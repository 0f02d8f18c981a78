"""`eldric workers` (list, show, remove) against a real controller with registered
workers: the table, --json, and the failures (down, wrong key, unknown worker)."""

from __future__ import annotations

import aiohttp

from tests.client.ops.cli import eldric, rows
from tests.conftest import free_port
from tests.models.fleet import controller, register

ADMIN = "adm-key"


async def _two(s: aiohttp.ClientSession, base: str) -> None:
    await register(s, base, "http://127.0.0.1:1", wid="wrk-a", models=["llama3.2:3b", "qwen"])
    await register(s, base, "http://127.0.0.1:2", wid="wrk-b", models=["qwen"],
                   status="degraded")


async def test_list_as_a_table_and_as_json(tmp_path):
    async with controller(tmp_path, admin_key=ADMIN) as c, aiohttp.ClientSession() as s:
        base = c["controller"]
        await _two(s, base)
        table = await eldric(tmp_path, "workers", "--controller", base)
        as_json = await eldric(tmp_path, "workers", "--controller", base, "--json")
    assert table.rc == 0, table
    got = rows(table.out)
    assert table.out.splitlines()[0].split()[:4] == ["ID", "TYPE", "STATUS", "URL"]
    assert got["wrk-a"][1:4] == ["inference", "healthy", "http://127.0.0.1:1"]
    assert got["wrk-a"][6] == "llama3.2:3b,qwen"
    assert got["wrk-b"][2] == "degraded"
    assert as_json.rc == 0
    listed = {w["id"]: w for w in as_json.json()["workers"]}
    assert set(listed) == {"wrk-a", "wrk-b"} and listed["wrk-b"]["models"] == ["qwen"]


async def test_the_controller_comes_from_the_environment_or_the_config_file(tmp_path):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        base = c["controller"]
        await _two(s, base)
        by_env = await eldric(tmp_path, "workers", "--json", env={"ELDRIC_CONTROLLER_URL": base})
        (tmp_path / "config" / "eldric").mkdir(parents=True)
        (tmp_path / "config" / "eldric" / "client.json").write_text(
            f'{{"controller_url": "{base}"}}')
        by_file = await eldric(tmp_path, "workers", "--json")
    assert by_env.rc == 0 and len(by_env.json()["workers"]) == 2
    assert by_file.rc == 0 and len(by_file.json()["workers"]) == 2


async def test_a_config_file_with_an_unknown_key_is_one_line(tmp_path):
    (tmp_path / "config" / "eldric").mkdir(parents=True)
    (tmp_path / "config" / "eldric" / "client.json").write_text('{"controler_url": "x"}')
    ran = await eldric(tmp_path, "workers")
    line = ran.one_error()
    assert "client.json" in line and "controler_url" in line


async def test_show_one_and_an_unknown_worker(tmp_path):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        base = c["controller"]
        await _two(s, base)
        shown = await eldric(tmp_path, "workers", "--controller", base, "show", "wrk-b")
        shown_json = await eldric(tmp_path, "workers", "show", "wrk-b", "--json",
                                  "--controller", base)
        unknown = await eldric(tmp_path, "workers", "--controller", base, "show", "wrk-zz")
    assert shown.rc == 0
    assert "status:     degraded" in shown.out and "models:     qwen" in shown.out
    assert shown_json.json()["id"] == "wrk-b"
    assert unknown.one_error() == "error: HTTP 404 worker_not_found: unknown worker wrk-zz"


async def test_remove_needs_the_admin_key(tmp_path):
    async with controller(tmp_path, admin_key=ADMIN) as c, aiohttp.ClientSession() as s:
        base = c["controller"]
        await _two(s, base)
        keyless = await eldric(tmp_path, "workers", "remove", "wrk-a", "--controller", base)
        wrong = await eldric(tmp_path, "workers", "remove", "wrk-a", "--controller", base,
                             "--admin-key", "nope")
        removed = await eldric(tmp_path, "workers", "remove", "wrk-a", "--controller", base,
                               env={"ELDRIC_ADMIN_KEY": ADMIN})
        again = await eldric(tmp_path, "workers", "remove", "wrk-a", "--controller", base,
                             "--admin-key", ADMIN)
        left = await eldric(tmp_path, "workers", "--controller", base, "--json")
    assert keyless.one_error().startswith("error: HTTP 401 invalid_api_key: ")
    assert wrong.one_error().startswith("error: HTTP 401 invalid_api_key: ")
    assert removed.rc == 0 and removed.out.strip() == "removed wrk-a"
    assert again.one_error() == "error: HTTP 404 worker_not_found: unknown worker wrk-a"
    assert [w["id"] for w in left.json()["workers"]] == ["wrk-b"]


async def test_a_controller_that_is_down_is_one_line(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("workers",), ("workers", "show", "wrk-a"), ("workers", "remove", "wrk-a")):
        ran = await eldric(tmp_path, *args, "--controller", url)
        assert ran.one_error().startswith(f"error: cannot reach {url}/api/v1/workers")


async def test_an_error_page_that_is_not_json_is_one_readable_line(tmp_path, aiohttp_server):
    """A proxy in front of the controller answers 502 with its HTML page: the line says the
    status and its reason, not the page's first line of markup."""
    from aiohttp import web

    async def page(request: web.Request) -> web.Response:
        return web.Response(status=502, content_type="text/html",
                            text="<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
                                 "<body><center>nginx</center></body>\r\n</html>\r\n")
    app = web.Application()
    app.router.add_get("/api/v1/workers", page)
    server = await aiohttp_server(app)
    ran = await eldric(tmp_path, "workers", "--controller", str(server.make_url("")))
    assert ran.one_error() == "error: HTTP 502 error: Bad Gateway"


async def test_a_url_that_is_not_eldric_is_one_line(tmp_path, aiohttp_server):
    """--controller pointing at something else that answers 200 (a file server, a web
    page, JSON of another shape, broken JSON): one line naming the URL, not a traceback."""
    from aiohttp import web

    answers = {"/api/v1/workers": web.Response(text="<html>hello</html>",
                                               content_type="text/html"),
               "/api/v1/models": web.json_response([1, 2]),
               "/api/v1/models/pull-jobs": web.Response(text="{",
                                                        content_type="application/json")}

    async def answer(request: web.Request) -> web.Response:
        return answers[request.path]
    app = web.Application()
    for path in answers:
        app.router.add_get(path, answer)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    for args in (["workers"], ["models"], ["models", "jobs"]):
        ran = await eldric(tmp_path, *args, "--controller", base)
        line = ran.one_error()
        assert line.startswith("error: HTTP 200 not_json: ") and base in line, line
