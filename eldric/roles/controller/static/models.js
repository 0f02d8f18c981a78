// eldric controller dashboard, the Models tab: pull a model to the fleet and watch it land
// (jobs with a bar per worker, live from the SSE stream GET /api/v1/models/events), the
// coverage matrix (models × workers), the model registry, and one worker's own models.
//
// As the rest of the page: everything that comes from the API is inserted as text nodes
// or attribute values, never parsed as HTML. The admin key (for pulls, retries, the
// registry) is kept in sessionStorage: this tab only, gone when it closes.
"use strict";

(function () {
  const { $, h, setText, bar, showEmpty, syncRows, isNum, num, percent, duration,
          ago } = window.EldricDashboard;

  const KEY_STORE = "eldric.adminKey";
  const NOT_DONE_MAX = 99.9; // a bar below completed never reads 100 % (the server's rule too)
  const JOBS_SHOWN = 12; // every running job, then the newest finished ones up to this
  const RECONNECT_MIN_MS = 500;
  const RECONNECT_MAX_MS = 10000;
  // The stream gives no sign of life to scripts between events (its pings are comments):
  // with jobs running and no event this long, the job list is fetched, and a list that
  // moved on without the stream saying so means the stream is dead (a half-open link).
  const SILENT_MS = 5000;
  const FALLBACK_POLL_MS = 3000; // the job list fetched this often while the stream is down
  const REGISTRY_MS = 10000;
  const LOCAL_MS = 5000;
  const CALL_TIMEOUT_MS = 15000;
  const TERMINAL = ["completed", "failed", "skipped", "cancelled"];
  const SERVING = ["inference", "cloud"];

  const m = {
    jobs: new Map(), // id -> job JSON
    workers: null, models: null, // from the page's 2 s poll (dashboard.js)
    registry: null, registryNote: null,
    local: null, localNote: null,
    started: false,
  };
  const stream = { es: null, state: "idle", backoff: RECONNECT_MIN_MS, timer: null,
                   lastEventAt: 0 };

  // ------------------------------------------------------------------ calls

  function key() { return sessionStorage.getItem(KEY_STORE) || ""; }

  function authHeaders() {
    const k = key();
    return k ? { Authorization: `Bearer ${k}` } : {};
  }

  // A call to the controller: its JSON body, or an Error carrying eldric's message and code.
  async function call(method, path, body, extra) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), (extra && extra.timeout) || CALL_TIMEOUT_MS);
    const headers = { Accept: "application/json", ...authHeaders() };
    let payload;
    if (body instanceof Blob) {
      payload = body;
      headers["Content-Type"] = "application/octet-stream";
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    try {
      const resp = await fetch(path, { method, headers, body: payload, cache: "no-store",
                                       signal: ctl.signal });
      let data = null;
      try { data = await resp.json(); } catch (_) { data = null; }
      if (!resp.ok) {
        const e = data && data.error ? data.error : {};
        const err = new Error(e.message || `HTTP ${resp.status}`);
        err.status = resp.status;
        err.code = e.code || null;
        throw err;
      }
      return data;
    } catch (err) {
      if (err.name === "AbortError") throw new Error(`${method} ${path}: no answer in time`);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  // The note under the pull form: what an action did or why it could not.
  function flash(text, bad) {
    const el = $("m-flash");
    el.hidden = false;
    el.classList.toggle("bad", Boolean(bad));
    el.textContent = text;
  }

  function failed(what, err) {
    const hint = err.status === 401 || err.status === 403 ? " (enter the admin key above)" : "";
    flash(`${what}: ${err.message}${err.code ? ` [${err.code}]` : ""}${hint}`, true);
  }

  // ------------------------------------------------------------------ formatting

  function bytes(n) {
    if (!isNum(n)) return "—";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let v = n, i = 0;
    while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
    return i ? `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}` : `${n} B`;
  }

  function params(n) {
    if (!isNum(n) || n <= 0) return null;
    if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B params`;
    if (n >= 1e6) return `${(n / 1e6).toFixed(0)}M params`;
    return `${n} params`;
  }

  // The percent a target's bar shows: 100 only once completed; null: not known yet.
  function shownPercent(t) {
    if (t.state === "completed") return 100;
    let p = isNum(t.percent) ? t.percent : null;
    if (p === null && isNum(t.total_bytes) && t.total_bytes > 0) p = 100 * num(t.completed_bytes) / t.total_bytes;
    if (p === null) return null;
    return Math.min(NOT_DONE_MAX, Math.max(0, Math.round(p * 10) / 10));
  }

  function isoAgo(text) {
    const t = Date.parse(text || "");
    return isNaN(t) ? "—" : ago(t / 1000);
  }

  // ------------------------------------------------------------------ jobs

  const STATE_TEXT = { queued: "pending", pulling: "pulling", verifying: "verifying",
                       completed: "completed", failed: "failed", skipped: "skipped",
                       cancelled: "cancelled" };

  function progressCell(t) {
    const pct = shownPercent(t);
    const cls = t.state === "failed" ? "bad" : t.state === "completed" ? "" :
      t.state === "verifying" ? "warn" : t.state === "skipped" || t.state === "cancelled" ? "off" : "run";
    const width = t.state === "skipped" ? 0 : pct === null ? 0 : pct;
    const label = pct !== null && t.state !== "skipped" ? percent(pct)
      : t.state === "queued" ? "0%" : t.state === "pulling" || t.state === "verifying" ? "…" : "—";
    return h("td", { class: "progress" },
      h("div", { class: "prog" }, bar(width, cls), h("span", { class: "pct" }, label)));
  }

  function bytesCell(t) {
    // skipped, or an operation without bytes (a deletion): nothing to count
    if (t.state === "skipped" || (!isNum(t.total_bytes) && !num(t.completed_bytes))) {
      return h("td", { class: "num na" }, "—");
    }
    const total = isNum(t.total_bytes) ? ` / ${bytes(t.total_bytes)}` : "";
    return h("td", { class: "num" }, `${bytes(num(t.completed_bytes))}${total}`);
  }

  function rateCell(t) {
    const parts = [];
    if (isNum(t.bytes_per_second) && t.bytes_per_second > 0) parts.push(`${bytes(t.bytes_per_second)}/s`);
    if (isNum(t.eta_seconds) && !TERMINAL.includes(t.state)) parts.push(`ETA ${duration(t.eta_seconds)}`);
    return h("td", { class: "num rate" }, parts.length ? parts.join(" · ") : h("span", { class: "na" }, "—"));
  }

  function whyCell(t) {
    if (t.state === "failed" || t.state === "skipped") {
      const text = t.error || (t.state === "failed" ? "failed" : "skipped");
      return h("td", { class: `why ${t.state}`, title: text },
        text, t.code ? h("span", { class: "code" }, t.code) : null);
    }
    return h("td", { class: "why", title: t.message || "" }, t.message || h("span", { class: "na" }, "—"));
  }

  function targetCells(t) {
    return [
      h("td", { class: "id" }, t.worker_id),
      h("td", null, h("span", { class: `badge st-${t.state}` }, STATE_TEXT[t.state] || t.state)),
      progressCell(t), bytesCell(t), rateCell(t), whyCell(t),
    ];
  }

  function jobHead(job) {
    const again = job.targets.filter((t) => t.state === "failed" || t.state === "cancelled");
    const buttons = [];
    if (job.state === "running") {
      buttons.push(h("button", { class: "btn", type: "button", "data-action": "cancel",
                                 "data-job-id": job.id }, "Cancel"));
    }
    if (again.length) {
      buttons.push(h("button", { class: "btn", type: "button", "data-action": "retry", "data-job-id": job.id,
                                 title: `start again on ${again.map((t) => t.worker_id).join(", ")}` },
        `Retry (${again.length})`));
    }
    const counts = {};
    for (const t of job.targets) counts[t.state] = (counts[t.state] || 0) + 1;
    const summary = Object.entries(counts).map(([s, n]) => `${n} ${STATE_TEXT[s] || s}`).join(" · ");
    return h("div", { class: "job-head" },
      h("span", { class: "kind" }, job.kind + (job.source ? ` from ${job.source}` : "")),
      h("span", { class: "model" }, job.model),
      h("span", { class: `badge js-${job.state}` }, job.state),
      h("span", { class: "sub" }, `${summary} · started ${ago(job.created_at)}` +
        (isNum(job.finished_at) ? ` · took ${duration(job.finished_at - job.created_at)}` : "")),
      h("span", { class: "actions" }, buttons));
  }

  function jobsShown() {
    const all = Array.from(m.jobs.values()).sort((a, b) => num(b.created_at) - num(a.created_at));
    const running = all.filter((j) => j.state === "running");
    const done = all.filter((j) => j.state !== "running");
    return running.concat(done.slice(0, Math.max(0, JOBS_SHOWN - running.length)));
  }

  function renderJobs() {
    const box = $("m-jobs");
    const jobs = jobsShown();
    const existing = new Map(Array.from(box.children).map((el) => [el.dataset.jobId, el]));
    jobs.forEach((job, i) => {
      let el = existing.get(job.id);
      if (!el) {
        el = h("div", { class: "job", "data-job-id": job.id },
          h("div", { class: "job-head" }),
          h("table", { class: "targets" },
            h("thead", null, h("tr", null, h("th", null, "worker"), h("th", { class: "fit" }, "state"),
              h("th", null, "progress"), h("th", { class: "num fit" }, "bytes"),
              h("th", { class: "num fit" }, "rate"), h("th", null, "detail"))),
            h("tbody")));
      }
      el.dataset.state = job.state;
      const head = jobHead(job);
      if (el.firstChild.outerHTML !== head.outerHTML) el.firstChild.replaceWith(head);
      const targets = job.targets.slice();
      syncRows(el.querySelector("tbody"), targets, (t) => t.worker_id,
               (t) => ({ "data-worker-id": t.worker_id }), targetCells, (t) => ({ done: TERMINAL.includes(t.state) }));
      for (const tr of el.querySelector("tbody").rows) {
        const t = targets.find((x) => x.worker_id === tr.dataset.key);
        if (!t) continue;
        tr.dataset.state = t.state;
        const pct = shownPercent(t);
        tr.dataset.percent = pct === null ? "" : String(pct);
      }
      if (box.children[i] !== el) box.insertBefore(el, box.children[i] || null);
    });
    const keep = new Set(jobs.map((j) => j.id));
    for (const [id, el] of existing) if (!keep.has(id)) el.remove();
    showEmpty("m-jobs-empty", jobs.length ? null : "No model job yet: pull a model above.");
  }

  function setJobs(list) {
    m.jobs = new Map(list.map((j) => [j.id, j]));
    renderJobs();
  }

  // ifNew: a job as an action's reply made it. The stream may have told us more already
  // (a pull of a model a worker has can end within one publish tick): keep that.
  function putJob(job, ifNew) {
    if (job && job.id && !(ifNew && m.jobs.has(job.id))) m.jobs.set(job.id, job);
    renderJobs();
  }

  async function fetchJobs() {
    const body = await call("GET", "/api/v1/models/pull-jobs");
    setJobs(Array.isArray(body.jobs) ? body.jobs : []);
  }

  async function jobAction(action, id, btn) {
    btn.disabled = true;
    try {
      if (action === "retry") {
        const r = await call("POST", `/api/v1/models/pull-jobs/${encodeURIComponent(id)}/retry`, {});
        putJob(r.job);
        flash(`retrying ${(r.retried || []).join(", ")}`);
      } else {
        putJob(await call("DELETE", `/api/v1/models/pull-jobs/${encodeURIComponent(id)}`));
        flash(`job ${id} cancelled`);
      }
    } catch (err) {
      failed(action === "retry" ? "retry" : "cancel", err);
      btn.disabled = false;
    }
  }

  async function startJob(what, path, body, method) {
    try {
      const r = await call(method || "POST", path, body);
      putJob(r.job, true);
      const skipped = (r.job.targets || []).filter((t) => t.state === "skipped").length;
      flash(`${what} started on ${(r.job.targets || []).length - skipped} worker(s)` +
            (skipped ? `, ${skipped} skipped` : "") + ` · ${r.job_id}`);
      return r;
    } catch (err) {
      failed(what, err);
      return null;
    }
  }

  // ------------------------------------------------------------------ the live stream

  function setStream(state) {
    stream.state = state;
    const el = $("m-stream");
    el.dataset.state = state;
    setText("m-stream-text", { live: "live", connecting: "connecting…",
                               reconnecting: "reconnecting…", idle: "not connected" }[state] || state);
  }

  function connect() {
    clearTimeout(stream.timer);
    if (stream.es) stream.es.close();
    setStream(stream.state === "idle" ? "connecting" : "reconnecting");
    const es = new EventSource("/api/v1/models/events");
    stream.es = es;
    const seen = () => { stream.lastEventAt = Date.now(); };
    es.addEventListener("open", () => {
      if (stream.es !== es) return;
      stream.backoff = RECONNECT_MIN_MS;
      seen();
      setStream("live");
    });
    // The first event of every connection is the whole job list: a page that lost the
    // stream is whole again at once, whatever it missed meanwhile.
    es.addEventListener("snapshot", (e) => {
      seen();
      try { setJobs(JSON.parse(e.data).jobs || []); } catch (_) { /* a torn event: the next one fixes it */ }
    });
    es.addEventListener("job", (e) => {
      seen();
      try { putJob(JSON.parse(e.data)); } catch (_) { /* as above */ }
    });
    es.addEventListener("removed", (e) => {
      seen();
      try { m.jobs.delete(JSON.parse(e.data).id); renderJobs(); } catch (_) { /* as above */ }
    });
    // EventSource retries some failures itself but gives up on others (a 502/503 while the
    // controller restarts): every error is handled here, with a backoff of our own.
    es.addEventListener("error", () => {
      if (stream.es !== es) return;
      es.close();
      stream.es = null;
      setStream("reconnecting");
      stream.timer = setTimeout(connect, stream.backoff);
      stream.backoff = Math.min(RECONNECT_MAX_MS, stream.backoff * 2);
    });
  }

  // While the stream is down the job list is fetched instead (the bars keep moving if
  // only the stream is broken). A live stream silent a while with jobs running is checked
  // against the list: a stalled pull says nothing and is the same in both; a list that
  // moved on means the stream is dead, and it is opened again.
  async function watchdog() {
    const running = Array.from(m.jobs.values()).some((j) => j.state === "running");
    if (stream.state !== "live") {
      fetchJobs().catch(() => {});
      return;
    }
    if (!running || Date.now() - stream.lastEventAt < SILENT_MS) return;
    const asked = stream.lastEventAt;
    let body;
    try { body = await call("GET", "/api/v1/models/pull-jobs"); } catch (_) { return; }
    if (stream.lastEventAt !== asked || stream.state !== "live") return; // it spoke meanwhile
    const list = Array.isArray(body.jobs) ? body.jobs : [];
    const same = list.length === m.jobs.size &&
      list.every((j) => m.jobs.has(j.id) && JSON.stringify(m.jobs.get(j.id)) === JSON.stringify(j));
    if (same) {
      stream.lastEventAt = Date.now(); // quiet, not dead: look again in SILENT_MS
      return;
    }
    setJobs(list);
    connect();
  }

  // ------------------------------------------------------------------ deleting

  // A deletion takes two clicks: the first arms the button ("Sure? …") for ARM_MS. Kept
  // here, not on the element, because the tables are rebuilt under it every refresh.
  const ARM_MS = 5000;
  const armed = new Map(); // action:id -> until (ms)

  function isArmed(action, id) { return (armed.get(`${action}:${id}`) || 0) > Date.now(); }

  function deleteButton(action, id, name, text) {
    const on = isArmed(action, id);
    return h("button", { class: on ? "btn danger armed" : "btn danger", type: "button",
                         "data-action": action, "data-id": id, "data-name": name },
      on ? `Sure? ${text}` : text);
  }

  // ------------------------------------------------------------------ coverage

  function liveWorkers() {
    return (m.workers || []).filter((w) => SERVING.includes(w.worker_type) && w.status !== "offline")
      .sort((a, b) => String(a.id).localeCompare(String(b.id)));
  }

  function renderMatrix() {
    if (!m.started || m.workers === null) return;
    const workers = liveWorkers();
    const ids = workers.map((w) => String(w.id));
    const head = h("tr", { id: "m-matrix-head" }, h("th", null, "model"),
      workers.map((w) => h("th", { class: "cell", title: `${w.id} · ${w.url || ""}` }, String(w.id))),
      h("th", { class: "num fit" }, "coverage"), h("th", { class: "fit" }));
    const old = $("m-matrix-head");
    if (old.outerHTML !== head.outerHTML) old.replaceWith(head);
    const models = (m.models || []).slice().sort((a, b) => String(a.id).localeCompare(String(b.id)));
    syncRows($("m-matrix-body"), models, (x) => String(x.id), (x) => ({ "data-model-id": String(x.id) }),
      (x) => {
        const has = new Set(Array.isArray(x.workers) ? x.workers.map(String) : []);
        const missing = ids.filter((id) => !has.has(id));
        const cov = isNum(x.coverage_percent) ? x.coverage_percent : 0;
        return [
          h("td", { class: "id" }, String(x.id)),
          ids.map((id) => h("td", { class: `cell ${has.has(id) ? "yes" : "no"}`,
                                    title: has.has(id) ? `${id} has it` : `${id} does not have it` },
                            has.has(id) ? "●" : "·")),
          h("td", { class: "num" }, percent(cov)),
          h("td", { class: "act" }, missing.length && has.size
            ? h("button", { class: "btn", type: "button", "data-action": "distribute",
                            "data-model": String(x.id), title: `to ${missing.join(", ")}` },
                `Distribute to the rest (${missing.length})`)
            : null,
            deleteButton("remove", String(x.id), String(x.id), "Remove from workers")),
        ].flat();
      });
    showEmpty("m-matrix-empty", !ids.length ? "No live inference or cloud worker."
      : models.length ? null : "No model on any live worker yet.");
  }

  // A model on some workers to the others: copied from a worker that serves its files
  // (file backends), else pulled by name (Ollama); the job says who was skipped and why.
  async function distributeRest(model) {
    const entry = (m.models || []).find((x) => String(x.id) === model);
    if (!entry) return;
    const has = new Set((entry.workers || []).map(String));
    const workers = liveWorkers();
    const rest = workers.map((w) => String(w.id)).filter((id) => !has.has(id));
    const source = workers.find((w) => has.has(String(w.id)) && w.model_ops && w.model_ops.files);
    if (source) {
      await startJob(`distribution of ${model}`, "/api/v1/models/distribute",
                     { model, source: "worker", from: String(source.id), workers: rest });
    } else {
      await startJob(`pull of ${model}`, "/api/v1/models/pull", { model, workers: rest });
    }
  }

  // ------------------------------------------------------------------ registry

  function registryModelCell(r) {
    const parts = [r.architecture, params(r.parameter_count), r.quantization,
                   isNum(r.context_length) ? `ctx ${r.context_length}` : null].filter(Boolean);
    return h("td", { class: "meta" }, parts.length ? parts.join(" · ") : h("span", { class: "na" }, "—"));
  }

  function registryCells(r) {
    return [
      h("td", { class: "id", title: r.id }, r.name, r.description ? h("span", { class: "sub" }, r.description) : null),
      h("td", null, r.format || "—"),
      h("td", { class: "num" }, bytes(r.size)),
      h("td", { class: "sha", title: r.sha256 || "" }, r.sha256 ? r.sha256.slice(0, 12) : "—"),
      h("td", { class: "url", title: r.source || "" }, r.source || h("span", { class: "na" }, "—")),
      h("td", { title: isNum(r.created_at) ? new Date(r.created_at * 1000).toLocaleString() : "" }, ago(r.created_at)),
      registryModelCell(r),
      h("td", { class: "act" },
        h("button", { class: "btn", type: "button", "data-action": "reg-distribute", "data-id": r.id,
                      "data-name": r.name }, "Distribute"),
        deleteButton("reg-delete", String(r.id), String(r.name), "Delete")),
    ];
  }

  function renderRegistry() {
    const list = (m.registry || []).slice().sort((a, b) => num(b.created_at) - num(a.created_at));
    syncRows($("m-registry-body"), list, (r) => String(r.id), (r) => ({ "data-registry-id": String(r.id) }),
             registryCells);
    showEmpty("m-registry-empty", m.registryNote || (m.registry === null || list.length ? null
      : "The registry is empty: upload a GGUF or safetensors file above."));
  }

  async function loadRegistry() {
    try {
      const body = await call("GET", "/api/v1/model-registry");
      m.registry = Array.isArray(body.models) ? body.models : [];
      m.registryNote = null;
    } catch (err) {
      m.registry = [];
      m.registryNote = err.status === 401 || err.status === 403
        ? "The registry needs the admin key: enter it above."
        : err.status === 404 ? "This controller has no model registry." : `The registry could not be read: ${err.message}`;
    }
    renderRegistry();
  }

  async function upload(ev) {
    ev.preventDefault();
    const file = $("m-upload-file").files[0];
    const name = $("m-upload-name").value.trim() || (file ? file.name.replace(/\.(gguf|safetensors)$/i, "") : "");
    if (!file) { flash("choose a model file to upload", true); return; }
    const q = new URLSearchParams({ name, format: $("m-upload-format").value, filename: file.name });
    const source = $("m-upload-source").value.trim();
    if (source) q.set("source", source);
    const btn = $("m-upload-btn");
    btn.disabled = true;
    flash(`uploading ${file.name} (${bytes(file.size)})…`);
    try {
      const r = await call("POST", `/api/v1/model-registry/upload?${q}`, file, { timeout: 6 * 3600 * 1000 });
      flash(`uploaded ${r.name} · sha256 ${String(r.sha256).slice(0, 12)}`);
      $("m-upload-form").reset();
      loadRegistry();
    } catch (err) {
      failed("upload", err);
    } finally {
      btn.disabled = false;
    }
  }

  // ------------------------------------------------------------------ one worker's models

  function renderWorkerChoice() {
    const sel = $("m-worker");
    const workers = (m.workers || []).filter((w) => w.worker_type !== "router")
      .sort((a, b) => String(a.id).localeCompare(String(b.id)));
    const want = [""].concat(workers.map((w) => String(w.id)));
    const have = Array.from(sel.options).map((o) => o.value);
    if (want.join("\n") === have.join("\n")) return;
    const chosen = sel.value;
    sel.replaceChildren(h("option", { value: "" }, "choose a worker…"),
      ...workers.map((w) => h("option", { value: String(w.id) },
        `${w.id} (${w.backend && w.backend.type ? w.backend.type : w.worker_type})`)));
    sel.value = want.includes(chosen) ? chosen : "";
  }

  function localCells(x) {
    return [
      h("td", { class: "id" }, x.name, x.digest ? h("span", { class: "sub" }, String(x.digest).slice(0, 19)) : null),
      h("td", null, x.format || "—"),
      h("td", { class: "num" }, bytes(x.size)),
      h("td", { title: x.modified_at || "" }, isoAgo(x.modified_at)),
      h("td", null, x.loaded === true ? "loaded" : x.loaded === false ? "not loaded" : h("span", { class: "na" }, "—")),
    ];
  }

  function renderLocal() {
    const list = m.local ? (m.local.models || []).slice().sort((a, b) => String(a.name).localeCompare(String(b.name))) : [];
    syncRows($("m-local-body"), list, (x) => String(x.name), (x) => ({ "data-local": String(x.name) }), localCells);
    const backend = m.local && m.local.backend ? `backend ${m.local.backend} · ${list.length} model(s)` : "";
    showEmpty("m-local-empty", m.localNote || (!$("m-worker").value ? "Choose a worker to see its own models."
      : m.local && !list.length ? `No model on this worker (${backend}).` : null));
    setText("m-local-backend", backend);
  }

  async function loadLocal() {
    const id = $("m-worker").value;
    if (!id) { m.local = null; m.localNote = null; renderLocal(); return; }
    try {
      m.local = await call("GET", `/api/v1/workers/${encodeURIComponent(id)}/models`);
      m.localNote = null;
    } catch (err) {
      m.local = null;
      m.localNote = `${id}: ${err.message}`;
    }
    if ($("m-worker").value === id) renderLocal();
  }

  // ------------------------------------------------------------------ wiring

  async function onClick(ev) {
    const btn = ev.target.closest("button[data-action]");
    if (!btn || btn.disabled) return;
    const a = btn.dataset.action;
    if (a === "retry" || a === "cancel") return jobAction(a, btn.dataset.jobId, btn);
    if ((a === "remove" || a === "reg-delete") && !isArmed(a, btn.dataset.id)) {
      armed.set(`${a}:${btn.dataset.id}`, Date.now() + ARM_MS);
      setTimeout(() => { renderMatrix(); renderRegistry(); }, ARM_MS + 50);
      return a === "remove" ? renderMatrix() : renderRegistry();
    }
    armed.delete(`${a}:${btn.dataset.id}`);
    btn.disabled = true;
    try {
      if (a === "distribute") await distributeRest(btn.dataset.model);
      else if (a === "reg-distribute") {
        await startJob(`distribution of ${btn.dataset.name}`, "/api/v1/models/distribute",
                       { model: btn.dataset.id, source: "registry" });
      } else if (a === "remove") {
        // Every worker that lists it; a name may hold slashes (hf.co/org/model:tag).
        const path = btn.dataset.id.split("/").map(encodeURIComponent).join("/");
        await startJob(`removal of ${btn.dataset.id}`, `/api/v1/models/${path}`, undefined, "DELETE");
      } else if (a === "reg-delete") {
        await call("DELETE", `/api/v1/model-registry/${encodeURIComponent(btn.dataset.id)}`);
        flash(`${btn.dataset.name} deleted from the registry`);
        await loadRegistry();
      }
    } catch (err) {
      failed(a.replace("reg-", "registry "), err);
    } finally {
      btn.disabled = false;
    }
  }

  async function pull(ev) {
    ev.preventDefault();
    const model = $("m-pull-model").value.trim();
    if (!model) { flash("enter the name of a model to pull", true); return; }
    const btn = $("m-pull-btn");
    btn.disabled = true;
    try {
      await startJob(`pull of ${model}`, "/api/v1/models/pull", { model });
    } finally {
      btn.disabled = false;
    }
  }

  // The Models tab's work starts the first time it is shown, and then goes on.
  function start() {
    if (m.started) return;
    m.started = true;
    connect();
    setInterval(watchdog, FALLBACK_POLL_MS);
    loadRegistry();
    setInterval(() => { if (!$("tab-models").hidden) loadRegistry(); }, REGISTRY_MS);
    setInterval(() => { if (!$("tab-models").hidden && $("m-worker").value) loadLocal(); }, LOCAL_MS);
    setInterval(renderJobs, 1000); // "started 12s ago" moves on between events
    renderMatrix();
    renderWorkerChoice();
    renderLocal();
  }

  function showTab() {
    const models = location.hash === "#models";
    $("tab-cluster").hidden = models;
    $("tab-models").hidden = !models;
    $("tab-btn-cluster").classList.toggle("on", !models);
    $("tab-btn-models").classList.toggle("on", models);
    $("tab-btn-cluster").setAttribute("aria-current", models ? "false" : "page");
    $("tab-btn-models").setAttribute("aria-current", models ? "page" : "false");
    if (models) start();
  }

  document.addEventListener("eldric:cluster", (ev) => {
    m.workers = ev.detail.workers;
    m.models = ev.detail.models;
    if (!m.started) return;
    renderMatrix();
    renderWorkerChoice();
  });

  document.addEventListener("DOMContentLoaded", () => {
    const keyBox = $("m-key");
    keyBox.value = key();
    keyBox.addEventListener("input", () => {
      if (keyBox.value) sessionStorage.setItem(KEY_STORE, keyBox.value);
      else sessionStorage.removeItem(KEY_STORE);
    });
    keyBox.addEventListener("change", () => { if (m.started) loadRegistry(); });
    $("m-pull-form").addEventListener("submit", pull);
    $("m-upload-form").addEventListener("submit", upload);
    $("m-worker").addEventListener("change", () => { m.local = null; m.localNote = null; renderLocal(); loadLocal(); });
    $("tab-models").addEventListener("click", onClick);
    window.addEventListener("hashchange", showTab);
    showTab();
  });

  // For a test or a console: the stream's state and the jobs as the page has them.
  window.EldricModels = { stream, jobs: () => Array.from(m.jobs.values()) };
})();
