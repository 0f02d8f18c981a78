"""`eldric models registry` (list, upload FILE with a progress bar, delete) against a real
controller's model registry."""

from __future__ import annotations

from tests.client.ops.cli import eldric, rows
from tests.client.ops.tty import in_a_terminal
from tests.conftest import free_port
from tests.models.gguf_file import small_model
from tests.models.registry_helpers import ADMIN, CLUSTER, controller


async def test_upload_list_and_delete(tmp_path):
    model = tmp_path / "tiny-q8.gguf"
    model.write_bytes(small_model(data=3 << 20))  # a few chunks: the bar moves
    async with controller(tmp_path) as c:
        up = await eldric(tmp_path, "models", "registry", "upload", str(model), "--controller",
                          c.url, "--admin-key", ADMIN, "--description", "for the test")
        again = await eldric(tmp_path, "models", "registry", "upload", str(model),
                             "--controller", c.url, "--admin-key", ADMIN)
        listed = await eldric(tmp_path, "models", "registry", "--controller", c.url,
                              "--admin-key", CLUSTER)
        as_json = await eldric(tmp_path, "models", "registry", "--json", "--controller",
                               c.url, "--admin-key", CLUSTER)
        gone = await eldric(tmp_path, "models", "registry", "delete", "tiny-q8",
                            "--controller", c.url, "--admin-key", ADMIN)
        after = await eldric(tmp_path, "models", "registry", "delete", "tiny-q8",
                             "--controller", c.url, "--admin-key", ADMIN)
    assert up.rc == 0, up
    assert up.out.startswith("uploaded tiny-q8 (") and "sha256 " in up.out
    assert up.err == ""  # no bar where nobody watches (a terminal has one, below)
    assert again.one_error().startswith("error: HTTP 409 registry_model_exists: ")
    row = next(r for r in rows(listed.out).values() if r[1] == "tiny-q8")
    assert row[2] == "gguf" and row[4] == "Q8_0"
    [m] = as_json.json()["models"]
    assert m["name"] == "tiny-q8" and m["description"] == "for the test"
    assert m["size"] == model.stat().st_size
    assert gone.rc == 0 and gone.out.startswith("deleted tiny-q8")
    assert after.one_error().startswith("error: HTTP 404 registry_model_not_found: ")


async def test_upload_refusals_are_one_line(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_bytes(b"not a model file at all" * 100)
    model = tmp_path / "m.gguf"
    model.write_bytes(small_model())
    async with controller(tmp_path) as c:
        bad = await eldric(tmp_path, "models", "registry", "upload", str(junk),
                           "--controller", c.url, "--admin-key", ADMIN)
        wrong = await eldric(tmp_path, "models", "registry", "upload", str(model),
                             "--controller", c.url, "--admin-key", CLUSTER)
        checksum = await eldric(tmp_path, "models", "registry", "upload", str(model),
                                "--controller", c.url, "--admin-key", ADMIN,
                                "--sha256", "0" * 64)
        listed = await eldric(tmp_path, "models", "registry", "--controller", c.url)
    assert bad.one_error().startswith("error: HTTP 400 invalid_model_file: ")
    assert wrong.one_error().startswith("error: HTTP 401 invalid_api_key: ")
    assert checksum.one_error().startswith("error: HTTP 400 checksum_mismatch: ")
    assert listed.one_error().startswith("error: HTTP 401 invalid_api_key: ")
    down = f"http://127.0.0.1:{free_port()}"
    ran = await eldric(tmp_path, "models", "registry", "upload", str(model), "--controller",
                       down)
    assert ran.one_error().startswith(f"error: cannot reach {down}/api/v1/model-registry/")


async def test_upload_shows_a_bar_in_a_terminal(tmp_path):
    model = tmp_path / "big.gguf"
    model.write_bytes(small_model(data=8 << 20))
    async with controller(tmp_path) as c:
        async with in_a_terminal(tmp_path, "models", "registry", "upload", str(model),
                                 "--controller", c.url, "--admin-key", ADMIN) as term:
            await term.expect(rb"big\.gguf +\[#*-+\] +\d+%")
            await term.expect(rb"uploaded big \(")
            assert await term.wait() == 0
