"""The Models tab's other panels in headless Chromium, against a real controller (with its
model registry) and two real eldric workers on fake Ollamas: Cancel of a running pull,
"distribute to the rest" from the coverage matrix, a worker's own models, the registry
(upload through the form, its metadata, distribute, delete), and names that are markup
shown as text."""

from __future__ import annotations

import hashlib
import json

import aiohttp
import pytest

from tests import browser
from tests.browser import STEP_TIMEOUT
from tests.conftest import run_eldric, until, url_of
from tests.fakes import ollama as fake_ollama
from tests.fakes.ollama_models import MANIFEST_MISSING, MODELS, Models
from tests.models.fleet import get
from tests.models.gguf_file import small_model
from tests.models.models_tab import healthy, open_tab, pull, type_into

OTHER = "qwen2.5:0.5b"
EVIL = "<img src=x onerror=document.title='pwned'>"


async def set_files(cdp: browser.CDP, selector: str, path: str) -> None:
    """Choose a file in an <input type=file>, as the file dialog would."""
    root = (await cdp.send("DOM.getDocument"))["root"]["nodeId"]
    node = (await cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector}))["nodeId"]
    await cdp.send("DOM.setFileInputFiles", {"nodeId": node, "files": [path]})


def job_where(cond: str) -> str:
    """JS: the id of the newest job on the page whose element `j` matches cond."""
    return f"(() => {{ const j = document.querySelector('.job'); return j && ({cond}) && j.dataset.jobId; }})()"


@pytest.mark.timeout(4 * STEP_TIMEOUT)
async def test_models_tab_cancel_distribute_registry_and_drill_down(aiohttp_server, tmp_path):
    browser.need_chromium()
    free = await aiohttp_server(fake_ollama.make_app(manage=Models()))
    stalls = Models(stall={OTHER: 500_000})
    stalling = await aiohttp_server(fake_ollama.make_app(manage=stalls))
    async with run_eldric("controller", tmp_path / "c", port=0, bind="127.0.0.1",
                          admin_key="ak", cluster_key="ck") as c, aiohttp.ClientSession() as s:
        base = c["controller"]
        worker = {"port": 0, "bind": "127.0.0.1", "backend": "ollama", "controller": base,
                  "api_key": "ck", "heartbeat_interval": 200}
        async with run_eldric("worker", tmp_path / "w1", backend_url=url_of(free),
                              **worker) as w1, \
                run_eldric("worker", tmp_path / "w2", backend_url=url_of(stalling),
                           **worker):
            workers = await until(lambda: healthy(s, base, 2), timeout=20)
            one = next(w["id"] for w in workers if w["url"] == w1["worker"])
            two = next(w["id"] for w in workers if w["id"] != one)

            async with browser.chromium(tmp_path, window=(1280, 1800)) as cdp:
                await open_tab(cdp, base)

                # 1. Cancel: a pull that stalls on one worker is stopped there.
                await pull(cdp, OTHER)
                pulling = (f"j.querySelector('tr[data-worker-id={json.dumps(two)}]')"
                           "?.dataset.state === 'pulling' && "
                           f"j.querySelector('tr[data-worker-id={json.dumps(one)}]')"
                           "?.dataset.state === 'completed'")
                first = await cdp.wait_for(job_where(pulling), "one done, the other stalled")
                await cdp.click(f".job[data-job-id='{first}'] button[data-action='cancel']")
                await cdp.wait_for(job_where(
                    f"j.dataset.jobId === {json.dumps(first)} && j.dataset.state === 'cancelled'"
                    f" && j.querySelector('tr[data-worker-id={json.dumps(two)}]').dataset.state === 'cancelled'"
                    " && !j.querySelector('button[data-action=cancel]')"
                    " && j.querySelector('button[data-action=retry]')"),
                    "the job cancelled, with a retry and no cancel button")
                _, j = await get(s, f"{base}/api/v1/models/pull-jobs/{first}")
                assert j["state"] == "cancelled", j

                # 2. The coverage matrix: on one of two workers, "distribute to the rest".
                row = f"#m-matrix-body tr[data-model-id={json.dumps(OTHER)}]"
                await cdp.wait_for(f"document.querySelectorAll('{row} td.cell.yes').length === 1",
                                   "the model on one worker in the matrix")
                stalls.release.set()
                await cdp.click(f"{row} button[data-action='distribute']")
                second = await cdp.wait_for(job_where(f"j.dataset.jobId !== {json.dumps(first)}"),
                                            "the distribution's job")
                _, j = await get(s, f"{base}/api/v1/models/pull-jobs/{second}")
                assert [t["worker_id"] for t in j["targets"]] == [two], j  # only the rest
                await cdp.wait_for(job_where(
                    f"j.dataset.jobId === {json.dumps(second)} && j.dataset.state === 'completed'"),
                    "the distribution to complete")
                await cdp.wait_for(f"document.querySelectorAll('{row} td.cell.yes').length === 2"
                                   f" && !document.querySelector('{row} button[data-action=distribute]')",
                                   "the model on both workers, nothing left to distribute")

                # 3. One worker's own models.
                await cdp.js(f"(() => {{ const s = document.getElementById('m-worker');"
                             f" s.value = {json.dumps(one)}; s.dispatchEvent(new Event('change')); }})()")
                local = await cdp.wait_for(
                    f"(() => {{ const tr = document.querySelector('#m-local-body tr[data-local={json.dumps(OTHER)}]');"
                    " return tr && [...tr.cells].map((c) => c.textContent); })()",
                    "the worker's models")
                assert local[2] == "2.0 MB" and local[3].endswith("ago"), local
                assert "backend ollama" in await cdp.js("document.getElementById('m-local-backend').textContent")

                # A model off the fleet: two clicks (the first arms the button), a job.
                remove = f"{row} button[data-action='remove']"
                await cdp.click(remove)
                assert await cdp.js(f"document.querySelector({json.dumps(remove)}).textContent") \
                    == "Sure? Remove from workers"
                _, listing = await get(s, base + "/api/v1/models/pull-jobs")
                assert len(listing["jobs"]) == 2  # nothing started by the first click
                await cdp.click(remove)
                await cdp.wait_for(job_where("j.querySelector('.kind').textContent === 'delete'"
                                             " && j.dataset.state === 'completed'"),
                                   "the removal to complete")
                await cdp.wait_for(f"!document.querySelector('{row}')", "the model gone from the matrix")
                await cdp.wait_for(f"!document.querySelector('#m-local-body tr[data-local={json.dumps(OTHER)}]')",
                                   "the model gone from the worker's list")
                assert OTHER not in free.app[MODELS].installed

                # 4. The registry: upload through the form, metadata, distribute, delete.
                data = small_model(file_type=7, data=300_000)
                path = tmp_path / "tiny.gguf"
                path.write_bytes(data)
                await type_into(cdp, "#m-upload-name", "tiny-llama")
                await type_into(cdp, "#m-upload-source", "hf:test/tiny")
                await set_files(cdp, "#m-upload-file", str(path))
                await cdp.click("#m-upload-btn")
                cells = await cdp.wait_for(
                    "(() => { const tr = document.querySelector('#m-registry-body tr');"
                    " return tr && [...tr.cells].map((c) => c.textContent); })()",
                    "the uploaded model in the registry")
                assert cells[0] == "tiny-llama" and cells[1] == "gguf", cells
                assert cells[2] == f"{len(data) / 1000:.0f} KB", cells
                assert cells[3] == hashlib.sha256(data).hexdigest()[:12], cells
                assert cells[4] == "hf:test/tiny" and cells[5].endswith("ago"), cells
                assert "llama" in cells[6] and "64 params" in cells[6] and "Q8_0" in cells[6], cells
                await cdp.click("#m-registry-body button[data-action='reg-distribute']")
                third = await cdp.wait_for(job_where(
                    "j.querySelector('.kind').textContent === 'distribute from registry'"
                    " && j.dataset.state === 'completed'"),
                    "the registry distribution to complete", timeout=30)
                _, j = await get(s, f"{base}/api/v1/models/pull-jobs/{third}")
                assert j["kind"] == "distribute" and j["source"] == "registry", j
                assert {t["state"] for t in j["targets"]} == {"completed"}, j
                assert any(n.startswith("tiny-llama") for n in free.app[MODELS].installed)
                await cdp.wait_for("[...document.querySelectorAll('#m-matrix-body tr')].some((tr) =>"
                                   " tr.dataset.modelId.startsWith('tiny-llama')"
                                   " && tr.querySelectorAll('td.cell.yes').length === 2)",
                                   "the distributed model on both workers in the matrix")
                await cdp.click("#m-registry-body button[data-action='reg-delete']")
                await cdp.wait_for("!!document.querySelector('#m-registry-body button.armed')",
                                   "the delete button armed")
                await cdp.click("#m-registry-body button[data-action='reg-delete']")
                await cdp.wait_for("!document.querySelector('#m-registry-body tr')"
                                   " && !document.getElementById('m-registry-empty').hidden",
                                   "the model gone from the registry")
                async with s.get(base + "/api/v1/model-registry",
                                 headers={"Authorization": "Bearer ak"}) as r:
                    assert (await r.json())["models"] == []

                # 5. A model name that is markup: a failed job, shown as text.
                await pull(cdp, EVIL)
                await cdp.wait_for(job_where("j.dataset.state === 'failed'"), "the evil pull failed")
                head = await cdp.js("document.querySelector('.job .model').textContent")
                assert head == EVIL
                assert MANIFEST_MISSING in await cdp.js("document.querySelector('.job .why').textContent")
                assert not await cdp.js("document.querySelectorAll('#tab-models img').length")
                assert await cdp.js("document.title") != "pwned"
                await cdp.screenshot(tmp_path / "models-more.png")
                browser.keep_png(tmp_path / "models-more.png", "/tmp/eldric-dashboard-models-more.png")
                assert not cdp.problems, cdp.problems
