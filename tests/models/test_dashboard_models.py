"""The controller dashboard's Models tab driven in headless Chromium (tests/browser.py)
against a real controller and three real eldric workers, each on a fake Ollama
(tests/fakes/ollama_models.py), one of which fails mid-pull.

A pull typed into the text box: the bars move (several percents under 100 seen over
time), no bar reads 100 % before its worker is completed, the failed worker shows
Ollama's reason; Retry brings it to completed. Then the SSE stream drops (the controller
is SIGKILLed mid-pull and started again): the page says it is reconnecting, comes back by
itself (no reload) and shows the job as it ended, no bar stuck.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time

import aiohttp
import pytest

from tests import browser
from tests.browser import STEP_TIMEOUT
from tests.conftest import free_port, run_eldric, until, url_of
from tests.fakes import ollama as fake_ollama
from tests.fakes.ollama_models import FAILED, MODELS, Models
from tests.models.fleet import get, post, register, up
from tests.models.models_tab import LIVE, healthy, open_tab, pull, type_into

MODEL = "llama3.2:1b"  # 3 MB + 12 KB in the fake's library
OTHER = "qwen2.5:0.5b"  # 2 MB + 1.5 KB
# About 1 MB/s: a pull takes seconds, so the page sees it move (the worker sends a line at
# most every 0.5 s, the controller publishes at most every 0.2 s).
PACE = {"chunk": 100_000, "tick": 0.1}
SCREENSHOT_COPY = "/tmp/eldric-dashboard-models.png"

# Every 50 ms, what each target row of the page shows (changes only): job, worker, state,
# the row's percent and the bar's label as the user reads it.
RECORD = """(() => {
    window.__seen = []; window.__marker = "no reload";
    const last = new Map();
    setInterval(() => {
        for (const tr of document.querySelectorAll(".job tr[data-worker-id]")) {
            const job = tr.closest(".job").dataset.jobId;
            const row = [job, tr.dataset.key, tr.dataset.state, tr.dataset.percent,
                         tr.querySelector(".pct").textContent];
            const k = job + "/" + tr.dataset.key, s = JSON.stringify(row);
            if (last.get(k) !== s) { last.set(k, s); window.__seen.push(row); }
        }
    }, 50);
    return true;
})()"""


def _rows(job_id: str) -> str:
    """JS: the page's target rows of a job as {worker: [state, percent, label, detail]}."""
    return f"""(() => {{
        const job = document.querySelector('.job[data-job-id={json.dumps(job_id)}]');
        if (!job) return null;
        const out = {{}};
        for (const tr of job.querySelectorAll('tr[data-worker-id]'))
            out[tr.dataset.key] = [tr.dataset.state, tr.dataset.percent,
                                   tr.querySelector('.pct').textContent,
                                   tr.querySelector('.why').textContent];
        return out;
    }})()"""


def _check_never_100_early(seen: list[list]) -> None:
    for job, worker, state, pct, label in seen:
        if state != "completed":
            assert label != "100%" and pct != "100", (job, worker, state, pct, label)


@pytest.mark.timeout(4 * STEP_TIMEOUT)
async def test_models_tab_pull_progress_failure_retry_and_stream_recovery(
        aiohttp_server, tmp_path, eldric_proc):
    browser.need_chromium()
    good = [await aiohttp_server(fake_ollama.make_app(manage=Models(**PACE))) for _ in range(2)]
    failing = await aiohttp_server(fake_ollama.make_app(
        manage=Models(fail={MODEL: 1_000_000}, **PACE)))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    controller = ("--role", "controller", "--port", str(port), "--bind", "127.0.0.1",
                  "--admin-key", "ak", "--cluster-key", "ck", "--worker-timeout", "3000",
                  "--data-dir", str(tmp_path / "controller"))
    ctl = eldric_proc(*controller)
    worker = {"port": 0, "bind": "127.0.0.1", "backend": "ollama", "controller": base,
              "api_key": "ck", "heartbeat_interval": 200}
    started = time.monotonic()
    async with aiohttp.ClientSession() as s:
        assert await until(lambda: up(s, base), timeout=20)
        async with run_eldric("worker", tmp_path / "w1", backend_url=url_of(good[0]), **worker), \
                run_eldric("worker", tmp_path / "w2", backend_url=url_of(good[1]), **worker), \
                run_eldric("worker", tmp_path / "w3", backend_url=url_of(failing), **worker) as w3:
            workers = await until(lambda: healthy(s, base, 3), timeout=20)
            bad_id = next(w["id"] for w in workers if w["url"] == w3["worker"])
            good_ids = sorted(w["id"] for w in workers if w["id"] != bad_id)
            # A data worker: every job lists it as skipped, with the reason.
            data_id = await register(s, base, "http://127.0.0.1:9", wid="data-1",
                                     worker_type="data", key="ck")

            async with browser.chromium(tmp_path, window=(1280, 900)) as cdp:
                await open_tab(cdp, base, key=None)
                await cdp.js(RECORD)
                # The coverage matrix has the three workers as columns.
                await cdp.wait_for("document.querySelectorAll('#m-matrix-head th.cell').length === 3",
                                   "the coverage matrix's worker columns")

                # 1. A pull without the key is refused, and the page says why.
                await pull(cdp, MODEL)
                await cdp.wait_for("/admin key/.test(document.getElementById('m-flash').textContent)"
                                   " && document.getElementById('m-flash').classList.contains('bad')",
                                   "the refusal of a pull without the admin key")
                _, listing = await get(s, base + "/api/v1/models/pull-jobs")
                assert listing["jobs"] == []

                # 2. With the key: "Pull to all workers".
                await type_into(cdp, "#m-key", "ak")
                assert await cdp.js("sessionStorage.getItem('eldric.adminKey')") == "ak"
                await cdp.click("#m-pull-btn")
                job_id = await cdp.wait_for(
                    "(document.querySelector('.job') || {dataset: {}}).dataset.jobId",
                    "the pull's job to appear")
                rows = await cdp.wait_for(_rows(job_id), "the job's rows")
                assert sorted(rows) == sorted([*good_ids, bad_id, data_id]), rows
                assert rows[data_id][0] == "skipped" and rows[data_id][2] == "—", rows
                assert "a data worker serves no models" in rows[data_id][3], rows

                # The failed worker, with Ollama's reason, and the job partial.
                rows = await cdp.wait_for(
                    f"(() => {{ const r = {_rows(job_id)};"
                    f" return r && r[{json.dumps(bad_id)}][0] === 'failed'"
                    f" && {json.dumps(good_ids)}.every((w) => r[w][0] === 'completed') && r; }})()",
                    "the good workers completed and the failing one failed", timeout=30)
                assert FAILED in rows[bad_id][3], rows[bad_id]
                assert rows[bad_id][2] != "100%" and float(rows[bad_id][1]) < 100
                assert all(rows[w][2] == "100%" for w in good_ids), rows
                await cdp.wait_for(f"document.querySelector('.job[data-job-id={json.dumps(job_id)}]')"
                                   ".dataset.state === 'partial'", "the job to be partial")

                seen = await cdp.js("window.__seen")
                _check_never_100_early(seen)
                for w in good_ids:
                    moving = {float(p) for j, wid, st, p, _ in seen
                              if j == job_id and wid == w and st == "pulling" and p}
                    assert len({p for p in moving if 0 < p < 100}) >= 2, (w, sorted(moving))

                # 3. Retry: only the failed worker goes again, and completes.
                failing.app[MODELS].fail.clear()
                await cdp.click(f".job[data-job-id='{job_id}'] button[data-action='retry']")
                await cdp.wait_for(
                    f"(() => {{ const r = {_rows(job_id)};"
                    f" return r && Object.entries(r).every(([w, x]) => x[0] === (w === {json.dumps(data_id)}"
                    " ? 'skipped' : 'completed')); })()",
                    "every worker completed after the retry", timeout=30)
                await cdp.wait_for(f"document.querySelector('.job[data-job-id={json.dumps(job_id)}]')"
                                   ".dataset.state === 'completed'", "the job to be completed")
                assert not await cdp.js(
                    f"!!document.querySelector(\".job[data-job-id='{job_id}'] button[data-action='retry']\")")
                assert good[0].app[MODELS].seen.count(("pull", MODEL)) == 1  # not pulled again
                # The matrix follows the heartbeats: the model on all three, nothing to distribute.
                await cdp.wait_for(
                    f"(() => {{ const tr = document.querySelector('#m-matrix-body tr[data-model-id={json.dumps(MODEL)}]');"
                    " return tr && tr.querySelectorAll('td.cell.yes').length === 3"
                    " && !tr.querySelector('button[data-action=distribute]'); })()", "the model on every worker in the matrix")

                # A worker whose model list cannot be read: the drill-down says why.
                await cdp.js(f"(() => {{ const s = document.getElementById('m-worker');"
                             f" s.value = {json.dumps(data_id)}; s.dispatchEvent(new Event('change')); }})()")
                note = await cdp.wait_for("(() => { const e = document.getElementById('m-local-empty');"
                                          " return !e.hidden && e.textContent; })()",
                                          "the drill-down's note on an unreachable worker")
                assert note.startswith(f"{data_id}: "), note

                # 4. The stream drops mid-pull: the controller is killed and started again.
                status, accepted = await post(s, base + "/api/v1/models/pull", {"model": OTHER},
                                              key="ak")
                assert status == 202, accepted
                other = accepted["job_id"]
                await cdp.wait_for(
                    f"(() => {{ const r = {_rows(other)};"
                    " return r && Object.values(r).some((x) => x[0] === 'pulling' && x[1] !== ''); })()",
                    "the second pull to be moving")
                ctl.p.send_signal(signal.SIGKILL)
                ctl.p.wait(5)
                await cdp.wait_for("document.getElementById('m-stream').dataset.state === 'reconnecting'",
                                   "the page to say it is reconnecting")
                assert await cdp.js("document.getElementById('m-stream-text').textContent") \
                    == "reconnecting…"
                await asyncio.sleep(1)  # down a while: the workers pull on meanwhile
                ctl = eldric_proc(*controller)
                assert await until(lambda: up(s, base), timeout=20)
                await cdp.wait_for(LIVE, "the page to reconnect by itself", timeout=20)
                rows = await cdp.wait_for(
                    f"(() => {{ const r = {_rows(other)};"
                    f" return r && Object.entries(r).every(([w, x]) => x[0] === (w === {json.dumps(data_id)}"
                    " ? 'skipped' : 'completed')) && r; })()",
                    "the second pull completed on every worker, on the page", timeout=30)
                assert all(x[2] == "100%" for w, x in rows.items() if w != data_id), rows
                assert await cdp.js("window.__marker") == "no reload"
                _check_never_100_early(await cdp.js("window.__seen"))

                # What the page shows is what the controller says.
                _, j = await get(s, f"{base}/api/v1/models/pull-jobs/{other}")
                assert j["state"] == "completed", j
                # The rest of the page (its 2 s poll) is back too.
                await cdp.wait_for("document.getElementById('notice').hidden",
                                   "the header to say the controller is reachable")
                await cdp.screenshot(tmp_path / "models.png")
                browser.keep_png(tmp_path / "models.png", SCREENSHOT_COPY)
                assert not cdp.problems, cdp.problems
    print(f"models tab: {time.monotonic() - started:.1f}s, screenshot {SCREENSHOT_COPY}")
