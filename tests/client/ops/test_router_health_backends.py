"""`eldric router config`, `eldric health URL…` and `eldric backends` against real roles
(and, for backends, the role registry)."""

from __future__ import annotations

from tests.client.ops.cli import eldric, rows
from tests.conftest import free_port, run_eldric

ADMIN = "adm"


def _router(tmp_path, **flags):  # type: ignore[no-untyped-def]
    return run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                      workers=f"http://127.0.0.1:{free_port()}", **flags)


async def test_router_config_shown_and_changed(tmp_path):
    async with _router(tmp_path, strategy="round_robin", admin_key=ADMIN) as r:
        url = r["router"]
        shown = await eldric(tmp_path, "router", "config", "--url", url)
        changed = await eldric(tmp_path, "router", "config", "--strategy", "least_connections",
                               "--json", "--url", url, "--admin-key", ADMIN)
        by_env = await eldric(tmp_path, "router", "config", "--json",
                              env={"ELDRIC_ROUTER_URL": url})
        unknown = await eldric(tmp_path, "router", "config", "--strategy", "fastest",
                               "--url", url, "--admin-key", ADMIN)
        keyless = await eldric(tmp_path, "router", "config", "--strategy", "random",
                               "--url", url)
    assert shown.rc == 0, shown
    assert shown.out.splitlines()[0] == "strategy:      round_robin (set by config)"
    assert changed.rc == 0
    assert changed.json()["strategy"] == "least_connections"
    assert changed.json()["strategy_source"] == "runtime"
    assert by_env.json()["strategy"] == "least_connections"
    assert unknown.one_error().startswith("error: HTTP 400 invalid_strategy: ")
    assert keyless.one_error().startswith("error: HTTP 401 invalid_api_key: ")
    down = f"http://127.0.0.1:{free_port()}"
    ran = await eldric(tmp_path, "router", "config", "--url", down)
    assert ran.one_error().startswith(f"error: cannot reach {down}/api/v1/config")


async def test_health_side_by_side(tmp_path):
    down = f"http://127.0.0.1:{free_port()}"
    async with run_eldric("controller", tmp_path / "c", port=0, bind="127.0.0.1") as c, \
            _router(tmp_path, health_interval=100) as r:
        both = await eldric(tmp_path, "health", c["controller"], r["router"] + "/")
        with_down = await eldric(tmp_path, "health", c["controller"], down, "--json")
    assert both.rc == 1  # the router's only worker is down: unhealthy
    got = rows(both.out)
    assert got[c["controller"]][1:3] == ["controller", "healthy"]
    assert got[r["router"]][1:3] == ["router", "unhealthy"]
    assert got[r["router"]][4] == "0/1"  # its upstreams: none of one healthy
    assert with_down.rc == 1
    found = {h["url"]: h for h in with_down.json()}
    assert found[c["controller"]]["role"] == "controller"
    assert found[c["controller"]]["status"] == "healthy"
    assert found[down]["status"] == "unreachable"


async def test_health_of_healthy_roles_exits_0(tmp_path):
    async with run_eldric("controller", tmp_path / "c", port=0, bind="127.0.0.1") as c, \
            run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                       backend="mock") as w:
        ran = await eldric(tmp_path, "health", c["controller"], w["worker"])
    assert ran.rc == 0, ran
    assert {row[1] for row in rows(ran.out).values()} == {"controller", "worker"}


async def test_health_of_what_is_not_eldric(tmp_path, fake_openai_server):
    from tests.conftest import url_of

    ran = await eldric(tmp_path, "health", url_of(fake_openai_server), "--json")
    assert ran.rc == 1
    [h] = ran.json()
    assert h["status"] == "error" and "not an eldric" in h["error"]


async def test_backends_lists_every_roles_kinds(tmp_path):
    table = await eldric(tmp_path, "backends")
    as_json = await eldric(tmp_path, "backends", "--json")
    assert table.rc == 0 and as_json.rc == 0
    found = as_json.json()
    # The worker's KINDS and the cloud role's PROVIDER_KINDS, through the registry.
    assert {"ollama", "vllm", "llamacpp", "tgi", "embedded", "mock"} <= set(found["worker"])
    assert found["worker"]["ollama"]["default_url"] == "http://127.0.0.1:11434"
    assert found["worker"]["openai"]["paths"] is None  # whatever the client asks
    assert {"openai_compatible", "anthropic", "ollama", "azure_openai"} <= set(found["cloud"])
    assert "groq" in found["cloud"]["openai_compatible"]["providers"]
    assert "/v1/messages" in found["cloud"]["anthropic"]["paths"]
    assert set(found) == {"worker", "cloud"}  # roles without backends list none
    lines = [ln.split() for ln in table.out.splitlines()[1:]]
    assert ["worker", "ollama", "http://127.0.0.1:11434"] in [ln[:3] for ln in lines]
    assert any(ln[:2] == ["cloud", "anthropic"] for ln in lines)
