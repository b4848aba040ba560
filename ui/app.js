// fnbox web UI: a small hash-routed app over the REST API. No build step; vendored libraries only.
import { CodeJar } from "/ui/vendor/codejar.js";

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmtMs = (v) => (v == null ? "–" : v < 10 ? v.toFixed(2) + " ms" : v < 1000 ? v.toFixed(1) + " ms" : (v / 1000).toFixed(2) + " s");
const fmtMb = (b) => (b == null ? "–" : (b / 1048576).toFixed(1) + " MB");
const fmtBytes = (b) => (b == null ? "–" : b < 1024 ? `${b} bytes` : b < 1048576 ? `${(b / 1024).toFixed(1)} KiB` : `${(b / 1048576).toFixed(1)} MiB`);
const fmtPct = (r) => (r == null ? "–" : (r * 100).toFixed(1) + "%");
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const fmtMemMb = (mb) => (mb >= 1024 ? (mb / 1024).toFixed(1) + " GB" : mb + " MB");
const fmtAgo = (ms) => (ms < 60000 ? (ms / 1000).toFixed(1) + " s ago" : ms < 3600000 ? Math.round(ms / 60000) + " min ago" : Math.round(ms / 3600000) + " h ago");
const badge = (v) => `<span class="badge ${esc(v)}">${esc(v)}</span>`;
const LIMITS = { timeout_ms: [100, 300000], memory_mb: [32, 2048], concurrency: [1, 64], max_retries: [0, 5] };
const fmtTime = (t) => (t ? new Date(t).toLocaleString() : "–");
// A date with the time, shortened: "14:03:07" today, "Dec 1, 14:03:07" earlier, the year when not this one.
const fmtWhen = (t) => {
  const d = new Date(t), now = new Date();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  if (d.toDateString() === now.toDateString()) return `today ${time}`;
  return `${d.toLocaleDateString([], { month: "short", day: "numeric", ...(d.getFullYear() === now.getFullYear() ? {} : { year: "numeric" }) })}, ${time}`;
};
const errText = (e) => (e ? `${e.type || "error"}: ${e.message || ""}` : "–");

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// ---------- API key ----------
// When the server has API keys on, every call but /healthz needs one. The key is kept in this
// browser's localStorage and sent as a Bearer header (the event stream, which cannot send
// headers, gets it as ?access_token=).
const KEY_STORAGE = "fnbox.apiKey";
const apiKey = () => { try { return localStorage.getItem(KEY_STORAGE) || ""; } catch { return ""; } };
function setApiKey(k) {
  try { if (k) localStorage.setItem(KEY_STORAGE, k); else localStorage.removeItem(KEY_STORAGE); } catch { /* storage disabled */ }
  $("#key-link").hidden = !k;
}

async function api(method, path, body, opts) {
  return (await request(method, path, body, opts)).data;
}

/** Every function: GET /api/v1/functions is paged (by count and by size), so follow
 *  X-Next-After until the last page. */
async function listFunctions() {
  const all = [];
  let after = null;
  for (;;) {
    const q = new URLSearchParams({ limit: "1000" });
    if (after) q.set("after", after);
    const { data, res } = await request("GET", "/api/v1/functions?" + q);
    all.push(...data);
    after = res.headers.get("x-next-after");
    if (!after || !data.length) return all;
  }
}

async function request(method, path, body, { signal, headers } = {}) {
  const init = { method, headers: { ...headers }, signal };
  const key = apiKey();
  if (key) init.headers["authorization"] = `Bearer ${key}`;
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let res, text;
  try {
    res = await fetch(path, init);
    text = await res.text();
  } catch (e) {
    if (e.name === "AbortError") throw e;
    // fetch's own "Failed to fetch" tells a user nothing: the server did not answer at all.
    throw new ApiError(0, { error: { code: "unreachable", message: "The fnbox server did not answer: it may be down or restarting, or this network is offline." } });
  }
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (res.status === 401) {
    askForKey(data?.error?.code === "invalid_token" || key ? "That key was not accepted (unknown or revoked)." : "");
    throw new ApiError(res.status, data);
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return { data, res };
}

let askingForKey = false;
function askForKey(problem) {
  if (askingForKey) return;
  askingForKey = true;
  cleanup.forEach((f) => { try { f(); } catch { /* page already gone */ } });
  cleanup = [];
  const main = $("#main");
  main.innerHTML = `<div class="panel" style="max-width:32rem"><h1>API key needed</h1>
    <p>This fnbox server requires an API key. Ask an admin for one (<code>fnbox keys create --name NAME --role invoke</code>).
    It is kept in this browser only.</p>
    <form id="key-form"><label for="key-input">API key</label>
    <input id="key-input" type="password" autocomplete="off" spellcheck="false" required placeholder="fnbox_…"${problem ? ' aria-describedby="key-error"' : ""}>
    ${problem ? `<p class="field-error" id="key-error" role="alert">${esc(problem)}</p>` : ""}
    <div class="row"><button class="primary" type="submit">Use this key</button></div></form></div>`;
  $("#key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    setApiKey($("#key-input").value.trim());
    askingForKey = false;
    route();
  });
  $("#key-input").focus();
}

function toast(msg, isErr = false) {
  const d = document.createElement("div");
  d.textContent = msg;
  if (isErr) d.className = "err";
  $("#toast").appendChild(d);
  setTimeout(() => d.remove(), 5000);
}

// ---------- router ----------
const pages = {};
let cleanup = [];
function onLeave(fn) { cleanup.push(fn); }

// Bumped on each navigation: a page still loading when the user moves on must not write its
// result (or its error, e.g. a missing element it looked up) over the page that replaced it.
let routeSeq = 0;
// A page with unsaved changes sets this (returns true while there are some): leaving then asks.
let unsaved = null;
let shownHash = null, restoring = false;
window.addEventListener("beforeunload", (ev) => { if (unsaved?.()) { ev.preventDefault(); ev.returnValue = ""; } });
async function route() {
  if (restoring) { restoring = false; return; } // the hash put back after "stay"
  if (unsaved?.() && location.hash !== shownHash) {
    if (!confirm("You have unsaved changes. Leave this page and lose them?")) {
      restoring = true;
      location.hash = shownHash;
      return;
    }
  }
  unsaved = null;
  shownHash = location.hash;
  const seq = ++routeSeq;
  cleanup.forEach((f) => { try { f(); } catch { /* page already gone */ } });
  cleanup = [];
  const [, page = "functions", arg] = location.hash.replace(/^#/, "").split("/");
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page || (page === "edit" && a.dataset.page === "create")));
  $("#nav").classList.remove("open");
  // Each navigation renders into its own element, so what a page left loading writes later
  // lands in a detached node, never in the page shown now.
  const main = $("#main"), view = document.createElement("div");
  main.replaceChildren(view);
  const render = pages[page] || pages.functions;
  askingForKey = false;
  try {
    await render(view, arg ? decodeURIComponent(arg) : undefined);
  } catch (e) {
    if (seq !== routeSeq) return; // left while loading: the error belongs to a page no longer shown
    if (e instanceof ApiError && e.status === 401) return; // the key form is showing
    const down = e instanceof ApiError && e.status === 0;
    view.innerHTML = `<div class="panel" id="page-error" role="alert"><h1>${down ? "Server not reachable" : "Something went wrong"}</h1><p>${esc(e.message)}</p>
      <p><button type="button" class="primary" id="page-retry">Try again</button>${down ? ' <span class="muted" id="page-retry-auto">Trying again every 5 s…</span>' : ""}</p></div>`;
    view.querySelector("#page-retry").addEventListener("click", () => route());
    if (down) {
      // Comes back by itself when the server does (a restart takes a few seconds).
      const timer = setInterval(async () => {
        if (seq !== routeSeq) { clearInterval(timer); return; }
        if (await fetch("/healthz").then((r) => r.ok).catch(() => false)) { clearInterval(timer); if (seq === routeSeq) route(); }
      }, 5000);
      onLeave(() => clearInterval(timer));
    }
  }
  if (seq === routeSeq) main.focus({ preventScroll: true });
}
window.addEventListener("hashchange", route);
// The skip link moves focus to the content; following its href would change the route.
document.querySelector(".skip")?.addEventListener("click", (ev) => { ev.preventDefault(); $("#main").focus(); });

async function refreshHealth() {
  try {
    const res = await fetch("/healthz");
    const h = await res.json();
    $("#health").innerHTML = Object.entries(h.runtimes || {})
      .map(([rt, s]) => `<span class="dot" style="background:${s.available ? "#3ecf7a" : "#ff6b6b"}"></span>${esc(rt)}${s.available ? "" : " unavailable"}`)
      .join("");
    $("#health").title = Object.entries(h.runtimes || {}).map(([rt, s]) => `${rt}: ${s.available ? "available" : s.reason}`).join("\n");
  } catch {
    $("#health").textContent = "server unreachable";
  }
}

// ---------- metrics helpers ----------
async function summaryRows(params = {}) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString();
  try {
    const s = await api("GET", "/api/v1/metrics/summary" + (q ? "?" + q : ""));
    return Array.isArray(s) ? s : s.groups || s.rows || [];
  } catch {
    return [];
  }
}
const pick = (o, ...paths) => {
  for (const p of paths) {
    const v = p.split(".").reduce((a, k) => (a == null ? a : a[k]), o);
    if (v != null) return v;
  }
  return null;
};

// ---------- Functions ----------
pages.functions = async (main) => {
  main.innerHTML = `<div class="row" style="justify-content:space-between"><h1>Functions</h1><a class="button primary" href="#/create">New function</a></div>
    <div class="panel table-wrap" id="fn-table"><div class="empty">Loading…</div></div>`;
  // Each listed function carries its last_execution: no download of executions for this page.
  const [fns, summary] = await Promise.all([listFunctions(), summaryRows()]);
  const byFn = {};
  for (const s of summary) {
    const name = s.function;
    const agg = (byFn[name] ||= { invocations: 0, successes: 0, p50: null });
    agg.invocations += pick(s, "invocations", "count") || 0;
    agg.successes += pick(s, "successes") || 0;
    agg.p50 = agg.p50 ?? pick(s, "duration_ms.p50", "duration.p50");
  }
  if (!fns.length) {
    $("#fn-table").innerHTML = `<div class="empty">No functions yet. <a href="#/create">Create one from an example.</a></div>`;
    return;
  }
  const td = (label, html) => `<td data-label="${label}">${html}</td>`;
  $("#fn-table").innerHTML = `<table class="stack"><thead><tr><th scope="col">Name</th><th scope="col">Language</th><th scope="col">Runtime</th><th scope="col">Version</th><th scope="col">Last status</th><th scope="col">Invocations</th><th scope="col">Success rate</th><th scope="col">p50</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead><tbody>
    ${fns.map((f) => {
      const a = byFn[f.name];
      return `<tr data-name="${esc(f.name)}">
        ${td("Name", `<a href="#/execute/${encodeURIComponent(f.name)}">${esc(f.name)}</a><div class="muted" style="font-size:12px">${esc(f.description)}</div>`)}
        ${td("Language", esc(f.language))}${td("Runtime", badge(f.runtime))}${td("Version", `v${f.version}${f.build?.status && f.build.status !== "none" ? ` <span class="muted" title="dependencies${f.serving_version != null ? `; v${f.serving_version} serves meanwhile` : ""}">deps</span> ${buildBadge(f.build.status)}` : ""}`)}
        ${td("Last status", f.last_execution ? `<span title="${esc(new Date(f.last_execution.started_at).toLocaleString())}, ${esc(fmtMs(f.last_execution.duration_ms))}">${badge(f.last_execution.status)}</span>` : '<span class="muted">never run</span>')}
        ${td("Invocations", a ? a.invocations : 0)}${td("Success rate", a && a.invocations ? fmtPct(a.successes / a.invocations) : "–")}${td("p50", fmtMs(a?.p50))}
        ${td("Actions", `<a class="button" href="#/edit/${encodeURIComponent(f.name)}" aria-label="Edit ${esc(f.name)}">Edit</a> <button class="danger" data-delete="${esc(f.name)}" aria-label="Delete ${esc(f.name)}">Delete</button>`)}</tr>`;
    }).join("")}</tbody></table>`;
  main.querySelectorAll("[data-delete]").forEach((b) => b.addEventListener("click", async () => {
    const name = b.dataset.delete;
    if (!confirm(`Delete function "${name}"? Its execution history is kept.`)) return;
    try {
      await api("DELETE", `/api/v1/functions/${encodeURIComponent(name)}`);
      toast(`Deleted ${name}`);
      route();
    } catch (e) { toast(e.message, true); }
  }));
};

// ---------- Create / edit ----------
function codeEditor(el, gutter, language) {
  let lang = language;
  let badLine = null;
  const highlight = (editor) => {
    const grammar = Prism.languages[lang === "python" ? "python" : "javascript"];
    editor.innerHTML = Prism.highlight(editor.textContent, grammar, lang);
  };
  const jar = CodeJar(el, highlight, { tab: "    " });
  // CodeJar wraps long lines (inline pre-wrap): the gutter's numbers then drift from the lines
  // they name, worst on a phone. Lines stay whole and the editor scrolls sideways instead.
  el.style.whiteSpace = "pre";
  el.style.overflowWrap = "normal";
  // Tab indents, so Esc then Tab leaves the editor (WCAG 2.1.2, no keyboard trap). Listened
  // for in the capture phase, on the way down, before CodeJar's own handler sees the key.
  let escaped = false;
  el.parentElement.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") { escaped = true; return; }
    if (ev.key === "Tab" && escaped) { escaped = false; ev.stopPropagation(); return; }
    if (!["Shift", "Control", "Alt", "Meta"].includes(ev.key)) escaped = false;
  }, true);
  const renderGutter = () => {
    const n = jar.toString().split("\n").length;
    gutter.innerHTML = Array.from({ length: n }, (_, i) => `<div class="${i + 1 === badLine ? "bad" : ""}">${i + 1}</div>`).join("");
  };
  jar.onUpdate(() => { badLine = null; renderGutter(); });
  return {
    get: () => jar.toString(),
    set: (code) => { jar.updateCode(code); renderGutter(); },
    setLanguage: (l) => { lang = l; jar.updateCode(jar.toString()); },
    markLine: (line) => { badLine = line; renderGutter(); },
  };
}

function showFieldErrors(form, fields) {
  form.querySelectorAll(".field").forEach((f) => f.classList.remove("invalid"));
  form.querySelectorAll(".field-error").forEach((e) => { e.textContent = ""; });
  for (const fe of fields || []) {
    const key = String(fe.field).replace(/^\./, "").split(/[.[]/)[0];
    const err = form.querySelector(`#err-${key}`) || form.querySelector("#err-form");
    err.textContent = fe.line ? `${fe.message}` : fe.message;
    err.closest(".field")?.classList.add("invalid");
  }
}

pages.edit = (main, name) => pages.create(main, name);
pages.create = async (main, editName) => {
  const editing = Boolean(editName);
  const [templates, existing] = await Promise.all([
    api("GET", "/api/v1/templates"),
    editing ? api("GET", `/api/v1/functions/${encodeURIComponent(editName)}`) : null,
  ]);
  main.innerHTML = `<h1>${editing ? `Edit ${esc(editName)}` : "Create a function"}</h1>
  <form class="panel" id="fn-form" novalidate>
    ${editing ? "" : `<div class="field"><label for="template">Start from an example</label>
      <select id="template"><option value="">Blank function</option>
      ${templates.map((t, i) => `<option value="${i}">${esc(t.title)} (${esc(t.language)})</option>`).join("")}</select></div>`}
    <div class="row">
      <div class="field"><label for="name">Name</label><input id="name" required pattern="[a-z0-9-]{1,63}" ${editing ? "readonly" : ""} aria-describedby="err-name" placeholder="my-function"><div class="field-error" id="err-name"></div></div>
      <div class="field"><label for="language">Language</label><select id="language" aria-describedby="err-language"><option value="python">Python</option><option value="javascript">JavaScript</option></select><div class="field-error" id="err-language"></div></div>
      <div class="field"><label for="runtime">Runtime</label><select id="runtime" aria-describedby="err-runtime"><option value="docker">Docker (runc)</option><option value="gvisor">gVisor (runsc)</option></select><div class="field-error" id="err-runtime"></div></div>
    </div>
    <div class="row">
      <div class="field"><label for="timeout_ms">Timeout (ms, ${LIMITS.timeout_ms.join("–")})</label><input id="timeout_ms" type="number" min="${LIMITS.timeout_ms[0]}" max="${LIMITS.timeout_ms[1]}" value="5000" aria-describedby="err-timeout_ms"><div class="field-error" id="err-timeout_ms"></div></div>
      <div class="field"><label for="memory_mb">Memory (MB, ${LIMITS.memory_mb.join("–")})</label><input id="memory_mb" type="number" min="${LIMITS.memory_mb[0]}" max="${LIMITS.memory_mb[1]}" value="128" aria-describedby="err-memory_mb"><div class="field-error" id="err-memory_mb"></div></div>
      <div class="field"><label for="concurrency">Concurrency (${LIMITS.concurrency.join("–")})</label><input id="concurrency" type="number" min="1" max="64" value="4" aria-describedby="err-concurrency"><div class="field-error" id="err-concurrency"></div></div>
      <div class="field"><label for="max_retries">Async retries (${LIMITS.max_retries.join("–")})</label><input id="max_retries" type="number" min="${LIMITS.max_retries[0]}" max="${LIMITS.max_retries[1]}" step="1" value="2" title="Retries of a failed asynchronous call before it goes to the dead letters" aria-describedby="max_retries-hint err-max_retries"><div class="sr-only" id="max_retries-hint">Retries of a failed asynchronous call before it goes to the dead letters</div><div class="field-error" id="err-max_retries"></div></div>
    </div>
    <div class="field"><label for="description">Description</label><input id="description" aria-describedby="err-description"><div class="field-error" id="err-description"></div></div>
    <div class="field" id="http-field"><label for="http">HTTP trigger (function URL)</label>
      <select id="http" aria-describedby="http-hint err-http"><option value="off">Off</option><option value="key">On, API key required</option><option value="public">On, public (rate-limited per client)</option></select>
      <div class="muted hint" id="http-hint"></div>
      <div class="field-error" id="err-http"></div></div>
    <fieldset class="field" id="env-field" aria-describedby="err-env"><legend>Environment variables</legend>
      <p class="muted" style="margin:0 0 6px">Values are secret: they are never shown again after saving. Leave a saved value blank to keep it.</p>
      <div id="env-rows"></div>
      <button type="button" id="env-add">Add variable</button>
      <div class="field-error" id="err-env"></div></fieldset>
    <div class="field"><label id="code-label">Code</label> <span class="muted hint" id="code-hint">Tab indents; Esc then Tab moves on</span>
      <div class="editor-wrap"><div class="gutter" id="gutter" aria-hidden="true"></div><div class="editor" id="code" tabindex="0" role="textbox" aria-multiline="true" aria-labelledby="code-label" aria-describedby="code-hint err-code"></div></div>
      <div class="field-error" id="err-code"></div></div>
    <div class="field" id="deps-field"><label for="dependencies">Dependencies <span class="mono deps-file" id="deps-file">requirements.txt</span></label>
      <textarea id="dependencies" class="deps" rows="4" spellcheck="false" autocomplete="off" aria-describedby="deps-hint err-dependencies"></textarea>
      <div class="muted hint" id="deps-hint"></div>
      <div class="field-error" id="err-dependencies"></div></div>
    <div class="field"><label for="sample_input">Sample input (JSON, builds the execute form)</label><textarea id="sample_input" rows="3" aria-describedby="err-sample_input">{}</textarea><div class="field-error" id="err-sample_input"></div></div>
    <div class="field-error" id="err-form"></div>
    <button class="primary" type="submit" id="save">${editing ? "Save changes" : "Create function"}</button>
  </form>`;
  const form = $("#fn-form");
  const editor = codeEditor($("#code"), $("#gutter"), "python");
  const blank = {
    python: "def handler(event, context):\n    return {\"hello\": event.get(\"name\", \"world\")}\n",
    javascript: "exports.handler = async (event, context) => {\n  return { hello: event.name ?? \"world\" };\n};\n",
  };
  const set = (id, v) => { $("#" + id).value = v ?? ""; if (id === "dependencies") fitDeps(); };
  // Dependencies: the text of a requirements.txt (Python) or a package.json (JavaScript),
  // built into the function's image when it is saved; the box follows the language.
  const depsFor = {
    python: { file: "requirements.txt", placeholder: "pyyaml==6.0.2\nhumanize>=4.9", hint: "One package per line, from PyPI (wheels only). Built into the function's image when saved; calls wait for the build." },
    javascript: { file: "package.json", placeholder: '{\n  "dependencies": { "dayjs": "^1.11.13" }\n}', hint: "Only its \"dependencies\" are installed, from npm, with install scripts off. Built into the function's image when saved; calls wait for the build." },
  };
  const depsLanguage = (lang) => {
    const d = depsFor[lang] || depsFor.python;
    $("#deps-file").textContent = d.file;
    $("#dependencies").placeholder = d.placeholder;
    $("#dependencies").setAttribute("aria-label", `Dependencies (${d.file})`);
    $("#deps-hint").textContent = d.hint;
  };
  depsLanguage("python");
  // The box grows with its text (4 to 16 lines), so a template's package.json shows whole.
  // Any method on /fn/NAME (and paths below it) calls the function with a Lambda function URL event.
  const httpHint = () => {
    const mode = $("#http").value, name = $("#name").value.trim() || "NAME";
    const url = `${location.origin}/fn/${name}`;
    $("#http-hint").innerHTML = mode === "off" ? "No URL: /fn/" + esc(name) + " answers 404."
      : `URL: <span class="mono" id="http-url">${esc(url)}</span> (any method, any path below it; Lambda function URL events)${mode === "key" ? " · send <span class=\"mono\">Authorization: Bearer &lt;key&gt;</span>" : " · anyone can call it"}`;
  };
  $("#http").addEventListener("change", httpHint);
  for (const ev of ["input", "change"]) $("#name").addEventListener(ev, httpHint);
  const fitDeps = () => { const el = $("#dependencies"); el.rows = Math.min(16, Math.max(4, el.value.split("\n").length)); };
  $("#dependencies").addEventListener("input", fitDeps);
  // Environment: saved variables show their name only (values are write-only on the server);
  // typing a value replaces it, Remove deletes it, an untouched row keeps it. Only changes are sent.
  const removedEnv = new Set();
  let envRowId = 0;
  const addEnvRow = (name = "", saved = false) => {
    const i = envRowId++;
    const row = document.createElement("div");
    row.className = "row env-row";
    row.dataset.saved = saved ? "1" : "";
    row.innerHTML = `<input class="env-name mono" aria-label="Variable name" placeholder="NAME" spellcheck="false" value="${esc(name)}" ${saved ? "readonly" : ""} id="env-name-${i}">
      <input class="env-value mono" aria-label="Value of ${esc(name || "the new variable")}" type="password" autocomplete="new-password" spellcheck="false" placeholder="${saved ? "•••••• (saved; type to replace)" : "value"}" id="env-value-${i}">
      <button type="button" class="env-remove">Remove</button>`;
    row.querySelector(".env-remove").addEventListener("click", () => { if (saved) removedEnv.add(name); row.remove(); });
    $("#env-rows").appendChild(row);
    return row;
  };
  $("#env-add").addEventListener("click", () => addEnvRow().querySelector(".env-name").focus());
  const envBody = () => {
    const env = {};
    for (const row of document.querySelectorAll("#env-rows .env-row")) {
      const name = row.querySelector(".env-name").value.trim(), value = row.querySelector(".env-value").value;
      if (!name) continue;
      if (row.dataset.saved && value === "") continue; // kept as saved
      env[name] = value;
    }
    if (editing) for (const name of removedEnv) if (!(name in env)) env[name] = null;
    return Object.keys(env).length ? env : undefined;
  };
  if (existing) {
    for (const n of existing.env_names || []) addEnvRow(n, true);
    for (const k of ["name", "language", "runtime", "timeout_ms", "memory_mb", "concurrency", "description"]) set(k, existing[k]);
    set("max_retries", existing.max_retries ?? 2);
    set("http", existing.http || "off");
    set("sample_input", JSON.stringify(existing.sample_input ?? {}, null, 2));
    set("dependencies", existing.dependencies);
    depsLanguage(existing.language);
    editor.setLanguage(existing.language);
    editor.set(existing.code);
  } else {
    editor.set(blank.python);
    let autoName = null;
    $("#template").addEventListener("change", (ev) => {
      const t = templates[ev.target.value];
      if (!t) { editor.set(blank[$("#language").value]); set("dependencies", ""); return; }
      set("language", t.language);
      depsLanguage(t.language);
      set("dependencies", t.dependencies);
      editor.setLanguage(t.language);
      editor.set(t.code);
      set("sample_input", JSON.stringify(t.sample_input, null, 2));
      set("description", t.description);
      // A name the page made up follows the example; one the user typed stays.
      if (!$("#name").value || $("#name").value === autoName) { autoName = `${t.slug}-${t.language === "python" ? "py" : "js"}`; set("name", autoName); }
      httpHint();
    });
  }
  httpHint();
  $("#language").addEventListener("change", (ev) => {
    const lang = ev.target.value;
    editor.setLanguage(lang);
    depsLanguage(lang);
    if (editing) return;
    // The code follows the language unless the user wrote their own: the same example in the
    // other language if there is one, else the blank function (a Python example kept under
    // "JavaScript" could never be saved).
    const picked = templates[$("#template").value];
    const untouched = [...Object.values(blank), ...templates.map((t) => t.code)].includes(editor.get());
    if (!untouched && !confirm(`Replace your code with a ${lang === "python" ? "Python" : "JavaScript"} starting point?`)) return;
    const twin = picked && templates.findIndex((t) => t.slug === picked.slug && t.language === lang);
    if (twin != null && twin >= 0) {
      $("#template").value = String(twin);
      $("#template").dispatchEvent(new Event("change"));
      return;
    }
    $("#template").value = "";
    editor.set(blank[lang]);
    set("dependencies", "");
  });
  // Unsaved: anything typed in the form or the editor since it was filled.
  const snapshot = () => JSON.stringify([...form.querySelectorAll("input, select, textarea")].map((el) => el.value).concat(editor.get()));
  let saved = snapshot();
  unsaved = () => snapshot() !== saved;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let sample;
    try { sample = JSON.parse($("#sample_input").value || "{}"); } catch (e) {
      showFieldErrors(form, [{ field: "sample_input", message: "not valid JSON: " + e.message }]);
      return;
    }
    const num = (id) => { const v = $("#" + id).value.trim(); return v === "" ? undefined : Number(v); };
    const body = {
      language: $("#language").value, runtime: $("#runtime").value, code: editor.get(),
      timeout_ms: num("timeout_ms"), memory_mb: num("memory_mb"), concurrency: num("concurrency"), max_retries: num("max_retries"),
      description: $("#description").value, sample_input: sample, env: envBody(), http: $("#http").value,
    };
    // On an edit an empty box removes the dependencies; a new function without them leaves it out.
    const deps = $("#dependencies").value;
    if (editing || deps.trim()) body.dependencies = deps;
    if (!editing) body.name = $("#name").value.trim();
    $("#save").disabled = true;
    try {
      const f = editing
        ? await api("PUT", `/api/v1/functions/${encodeURIComponent(editName)}`, body)
        : await api("POST", "/api/v1/functions", body);
      toast(`${editing ? "Saved" : "Created"} ${f.name} (version ${f.version})${f.build?.status === "building" ? ", building its dependencies" : ""}`);
      saved = snapshot();
      location.hash = `#/execute/${encodeURIComponent(f.name)}`;
    } catch (e) {
      const fields = e.body?.error?.fields || [{ field: "form", message: e.message }];
      showFieldErrors(form, fields);
      const codeErr = fields.find((f) => f.field === "code" && f.line);
      if (codeErr) editor.markLine(codeErr.line);
    } finally {
      $("#save").disabled = false;
    }
  });
};

// ---------- Dependency builds ----------
const buildBadge = (status) => `<span class="badge build-${esc(status)}" data-status="${esc(status)}">${esc(status)}</span>`;

function buildPanel(r) {
  const b = r.build || {};
  const packages = b.packages || [];
  const serving = r.serving_version != null
    ? `<p class="notice ${r.status === "failed" ? "failed" : "building"}" id="build-serving">Version ${r.serving_version} serves calls while version ${r.version} ${r.status === "failed" ? "failed to build" : "builds"}.</p>`
    : "";
  const took = b.duration_ms != null ? fmtMs(b.duration_ms) : b.started_at ? `${fmtElapsed(Date.now() - Date.parse(b.started_at))} so far` : "–";
  const logs = b.logs || "";
  return `<div class="row" style="justify-content:space-between;align-items:center"><h2 style="margin:0">Dependencies ${buildBadge(r.status)}</h2>
      <span class="muted" style="font-size:13px">version ${r.version}</span></div>
    ${serving}
    ${r.status === "failed" ? `<pre class="build-error" id="build-error">${esc(b.error || "the build failed")}</pre>` : ""}
    <dl class="kv" id="build-facts" style="margin-top:10px">
      <dt>Packages</dt><dd id="build-packages">${packages.length ? packages.map((p) => `<span class="pkg mono">${esc(p)}</span>`).join(" ") : '<span class="muted">–</span>'}</dd>
      <dt>Duration</dt><dd id="build-duration">${esc(took)}</dd>
      <dt>Size</dt><dd id="build-size">${fmtSize(b.size_bytes)}</dd>
    </dl>
    <details id="build-logs-box" ${r.status === "ready" ? "" : "open"}><summary>Build logs</summary><pre id="build-logs" class="build-logs">${esc(logs || (r.status === "building" ? "waiting for output…" : "(no logs)"))}</pre></details>`;
}
const fmtElapsed = (ms) => { const s = Math.max(0, Math.round(ms / 1000)); return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`; };
const fmtSize = (b) => (b == null ? "–" : b >= 1048576 ? (b / 1048576).toFixed(1) + " MB" : b >= 1024 ? (b / 1024).toFixed(1) + " KB" : b + " B");

/** Shows a function's build in `panel`, live while it runs: GET /build?wait=2 in a loop until
 *  it ends; stops (and aborts the request in flight) when the page is left. */
function watchBuild(name, panel, badgeEl) {
  let stopped = false;
  const ctl = new AbortController();
  onLeave(() => { stopped = true; ctl.abort(); });
  const draw = (r) => {
    if (stopped) return;
    const logsBox = panel.querySelector("#build-logs");
    const pinned = logsBox ? logsBox.scrollTop + logsBox.clientHeight >= logsBox.scrollHeight - 4 : true;
    const scrolled = logsBox ? logsBox.scrollTop : 0;
    const open = panel.querySelector("#build-logs-box")?.open;
    panel.hidden = r.status === "none";
    panel.dataset.status = r.status;
    panel.innerHTML = buildPanel(r);
    if (open !== undefined && r.status !== "ready") panel.querySelector("#build-logs-box").open = open;
    const box = panel.querySelector("#build-logs");
    if (box) box.scrollTop = pinned ? box.scrollHeight : scrolled; // follow the end unless scrolled up
    if (badgeEl) badgeEl.innerHTML = buildBadge(r.status);
  };
  (async () => {
    let wait = 0, failures = 0;
    while (!stopped) {
      let r;
      try {
        r = await api("GET", `/api/v1/functions/${encodeURIComponent(name)}/build?wait=${wait}`, undefined, { signal: ctl.signal });
        failures = 0;
      } catch (e) {
        if (stopped || e.name === "AbortError") return;
        if (++failures > 5) { panel.insertAdjacentHTML("beforeend", `<p class="field-error">Not refreshed: ${esc(e.message)}</p>`); return; }
        await new Promise((res) => setTimeout(res, 2000));
        continue;
      }
      draw(r);
      if (r.status !== "building") {
        if (wait && !stopped) toast(r.status === "ready" ? `${name}: dependencies ready` : `${name}: dependency build failed`, r.status === "failed");
        return;
      }
      wait = 2;
    }
  })();
}

// ---------- Execute ----------
function inputField(key, value, path) {
  const id = "in-" + path.join("-").replace(/[^a-zA-Z0-9_-]/g, "_");
  const label = `<label for="${id}">${esc(key)}</label>`;
  const dp = `data-path='${esc(JSON.stringify(path))}'`;
  if (typeof value === "number") return `<div class="field">${label}<input id="${id}" type="number" step="any" ${dp} data-kind="number" value="${value}"></div>`;
  if (typeof value === "boolean") return `<div class="field">${label}<select id="${id}" ${dp} data-kind="boolean"><option ${value ? "selected" : ""}>true</option><option ${value ? "" : "selected"}>false</option></select></div>`;
  // A text of several lines (a YAML document, say) keeps its line breaks in a textarea.
  if (typeof value === "string" && value.includes("\n")) return `<div class="field" style="flex-basis:100%">${label}<textarea id="${id}" rows="${Math.min(12, value.split("\n").length + 1)}" ${dp} data-kind="string">${esc(value)}</textarea></div>`;
  if (typeof value === "string") return `<div class="field">${label}<input id="${id}" ${dp} data-kind="string" value="${esc(value)}"></div>`;
  if (Array.isArray(value) && value.every((x) => typeof x === "number" || typeof x === "string"))
    return `<div class="field">${label}<input id="${id}" ${dp} data-kind="list" data-numeric="${value.every((x) => typeof x === "number")}" value="${esc(value.join(", "))}"><div class="muted" style="font-size:12px">comma-separated list</div></div>`;
  return `<div class="field">${label}<textarea id="${id}" rows="3" ${dp} data-kind="json">${esc(JSON.stringify(value, null, 2))}</textarea><div class="muted" style="font-size:12px">JSON</div></div>`;
}

function readForm(root) {
  const out = {};
  for (const el of root.querySelectorAll("[data-path]")) {
    const [key] = JSON.parse(el.dataset.path);
    const v = el.value;
    switch (el.dataset.kind) {
      case "number": out[key] = v === "" ? null : Number(v); break;
      case "boolean": out[key] = v === "true"; break;
      case "list": out[key] = v.split(",").map((s) => s.trim()).filter((s) => s !== "").map((s) => (el.dataset.numeric === "true" ? Number(s) : s)); break;
      case "json": out[key] = JSON.parse(v || "null"); break;
      default: out[key] = v;
    }
  }
  return out;
}

/** Copy and Download buttons for the text of `#id` (handled once, for the whole page, below). */
function copyButtons(id, filename) {
  return `<span class="pre-actions"><button type="button" class="small" data-copy="${id}" aria-label="Copy the ${id}">Copy</button>
    <button type="button" class="small" data-download="${id}" data-filename="${esc(filename)}" aria-label="Download the ${id}">Download</button></span>`;
}

/** A success's output: in full when the record kept it; when it was larger than the record
 *  limit, say so and where the whole value is (the caller got it; records keep 64 KiB). */
function outputBlock(r) {
  if (r.output_truncated && r.output == null) {
    return `<h2>Output</h2><div class="notice building" id="output-truncated"><strong>Output not kept: it was larger than the 64 KiB an execution record keeps.</strong>
      The caller received it in full${r.output_bytes != null ? ` (${esc(fmtBytes(r.output_bytes))})` : ""}. To see it, run the function again here (Run shows the whole answer)
      or call <span class="mono">POST /api/v1/functions/${esc(r.function)}/invoke</span> and read the response body.</div>`;
  }
  return `<div class="row pre-head"><h2>Output</h2>${copyButtons("output", `${r.function || "output"}-${r.execution_id || r.id}.json`)}</div><pre id="output">${esc(JSON.stringify(r.output, null, 2))}</pre>`;
}

document.addEventListener("click", async (ev) => {
  const copy = ev.target.closest("[data-copy]"), download = ev.target.closest("[data-download]");
  const el = (copy || download) && document.getElementById((copy || download).dataset.copy || (copy || download).dataset.download);
  if (!el) return;
  if (copy) {
    try { await navigator.clipboard.writeText(el.textContent); toast("Copied"); } catch {
      // No clipboard (a page not served over https or localhost): select it for Ctrl+C.
      const range = document.createRange(); range.selectNodeContents(el);
      getSelection().removeAllRanges(); getSelection().addRange(range);
      toast("Selected: press Ctrl+C to copy");
    }
  } else {
    const url = URL.createObjectURL(new Blob([el.textContent], { type: "text/plain" }));
    const a = Object.assign(document.createElement("a"), { href: url, download: download.dataset.filename || "fnbox.txt" });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }
});

function resultPanel(r) {
  const err = r.error ? `<h2>Error</h2><pre>${esc(r.error.type)}: ${esc(r.error.message)}${r.error.stack ? "\n\n" + esc(r.error.stack) : ""}</pre>` : "";
  return `<div class="stats" id="result-stats">
      <div class="stat"><div class="l">Status</div><div class="v">${badge(r.status)}</div></div>
      <div class="stat"><div class="l">Duration</div><div class="v">${fmtMs(r.duration_ms)}</div></div>
      <div class="stat"><div class="l">In handler</div><div class="v">${fmtMs(r.exec_ms)}</div></div>
      <div class="stat"><div class="l">Memory</div><div class="v">${fmtMb(r.memory_bytes)}</div></div>
      <div class="stat"><div class="l">Start</div><div class="v">${r.cold_start ? "cold" : "warm"}</div></div>
      <div class="stat"><div class="l">Runtime</div><div class="v">${badge(r.runtime)} <span class="muted">v${r.version}</span></div></div>
      ${r.node ? `<div class="stat"><div class="l">Node</div><div class="v" id="result-node">${esc(r.node)}</div></div>` : ""}
    </div>
    ${r.status === "queued" ? `<p class="notice building" id="queued-notice">Queued: this attempt has not run yet.</p>` : ""}
    ${r.status === "success" ? outputBlock(r) : ""}
    ${err}
    ${r.status === "queued" ? "" : `<div class="row pre-head"><h2>Logs</h2>${r.logs ? copyButtons("logs", `${r.function || "logs"}-${r.execution_id || r.id}.log`) : ""}</div><pre id="logs">${esc(r.logs || "(no logs)")}</pre>`}
    <p class="muted mono">execution ${esc(r.execution_id || r.id)}${r.trigger ? ` · ${esc(r.trigger)}` : ""}${r.attempt != null ? ` · <span id="result-attempt">attempt ${esc(r.attempt)}</span>` : ""}${r.request_id
      ? ` · request <a id="result-request" href="#/executions/${encodeURIComponent(r.request_id)}" title="Every attempt of this call">${esc(r.request_id)}</a>` : ""}</p>`;
}

pages.execute = async (main, name) => {
  const fns = await listFunctions();
  if (!fns.length) {
    main.innerHTML = `<h1>Execute</h1><div class="panel empty">No functions yet. <a href="#/create">Create one.</a></div>`;
    return;
  }
  const f = fns.find((x) => x.name === name) || (name === undefined ? fns[0] : null);
  if (!f) {
    // A link to a function that is gone (or mistyped) says so instead of opening another one.
    main.innerHTML = `<h1>Execute</h1><div class="panel" id="fn-missing" role="alert"><p>There is no function named <strong class="mono">${esc(name)}</strong>: it was deleted or the link is mistyped.</p>
      <p><a href="#/functions">All functions</a> · <a href="#/create">Create a function</a>${fns.length ? ` · or pick one: ${fns.slice(0, 8).map((x) => `<a href="#/execute/${encodeURIComponent(x.name)}">${esc(x.name)}</a>`).join(", ")}` : ""}</p></div>`;
    return;
  }
  const sample = f.sample_input ?? {};
  const formable = sample && typeof sample === "object" && !Array.isArray(sample);
  main.innerHTML = `<h1>Execute</h1>
    <div class="panel" id="input-panel">
      <div class="field"><label for="fn-pick">Function</label><select id="fn-pick">${fns.map((x) => `<option ${x.name === f.name ? "selected" : ""}>${esc(x.name)}</option>`).join("")}</select>
        <div class="muted" style="margin-top:4px">${esc(f.language)} · ${badge(f.runtime)} · v${f.version} · timeout ${f.timeout_ms} ms · ${f.memory_mb} MB${f.build?.status && f.build.status !== "none" ? ` · dependencies <span id="fn-build-badge">${buildBadge(f.build.status)}</span>` : ""}</div>
        ${f.url ? `<div class="muted" id="fn-url" style="margin-top:4px">Function URL (${f.http === "key" ? "API key required" : "public"}): <span class="mono">${esc(location.origin + f.url)}</span></div>` : ""}</div>
      <div class="row test-events" style="align-items:flex-end">
        <div class="field"><label for="te-pick">Saved test event</label><select id="te-pick"><option value="">Sample input</option></select></div>
        <div class="field" style="flex:0"><button type="button" id="te-save" title="Save the event below under a name, on the server, for everyone using this function">Save as…</button></div>
        <div class="field" style="flex:0"><button type="button" id="te-delete" class="danger" disabled>Delete</button></div>
      </div>
      <div class="tabs" role="tablist">
        <button type="button" role="tab" id="tab-form" aria-controls="input-form" aria-selected="${formable}" tabindex="${formable ? 0 : -1}" ${formable ? "" : "disabled"}>Form</button>
        <button type="button" role="tab" id="tab-raw" aria-controls="raw-wrap" aria-selected="${!formable}" tabindex="${formable ? -1 : 0}">Raw JSON</button>
      </div>
      <form id="input-form" role="tabpanel" aria-labelledby="tab-form" ${formable ? "" : "hidden"}><div class="row">${formable ? Object.entries(sample).map(([k, v]) => inputField(k, v, [k])).join("") : ""}</div></form>
      <div id="raw-wrap" role="tabpanel" aria-labelledby="tab-raw" ${formable ? "hidden" : ""}><label for="raw">Event (JSON)</label><textarea id="raw" rows="6">${esc(JSON.stringify(sample, null, 2))}</textarea></div>
      <div class="field-error" id="input-error"></div>
      <div class="row" style="align-items:center">
        <button class="primary" id="run" title="Run (Ctrl+Enter)">Run</button>
        <label for="run-version" class="sr-only">Version to run</label><select id="run-version" style="width:auto" title="The version a Run calls"><option value="">current (v${esc(f.version)})</option></select>
        <button type="button" id="run-async" title="Queue the call (Prefer: respond-async) and follow its attempts: retried up to ${esc(f.max_retries ?? 2)} times, then kept in the dead letters">Invoke async</button>
        <span class="muted hint">Async: retried up to ${esc(plural(f.max_retries ?? 2, "time"))} on failure</span>
      </div>
    </div>
    <div class="panel" id="result" aria-live="polite"><div class="empty">Run the function to see its result.</div></div>
    <div class="panel" id="build-panel" ${f.build?.status && f.build.status !== "none" ? "" : "hidden"}></div>
    <div class="panel" id="schedules-panel"></div>
    <div class="panel" id="versions-panel"></div>`;
  $("#fn-pick").addEventListener("change", (ev) => { location.hash = `#/execute/${encodeURIComponent(ev.target.value)}`; });
  if (f.build?.status && f.build.status !== "none") watchBuild(f.name, $("#build-panel"), $("#fn-build-badge"));
  const showTab = (raw) => {
    if (raw === !$("#raw-wrap").hidden) return;
    $("#input-error").textContent = "";
    if (raw) {
      $("#raw").value = JSON.stringify(readFormSafe(), null, 2);
    } else {
      // Back to the form with what was typed as JSON: the form is rebuilt from it, so Run sends
      // exactly that (it used to keep the form's old values and drop the edit).
      let v;
      try { v = JSON.parse($("#raw").value || "{}"); } catch (e) {
        $("#input-error").textContent = "Input is not valid JSON, so the form cannot show it: " + e.message;
        return;
      }
      if (!v || typeof v !== "object" || Array.isArray(v)) {
        $("#input-error").textContent = "The form shows a JSON object; this event is not one. Keep editing it as raw JSON.";
        return;
      }
      $("#input-form").innerHTML = `<div class="row">${Object.entries(v).map(([k, x]) => inputField(k, x, [k])).join("")}</div>`;
    }
    $("#input-form").hidden = raw;
    $("#raw-wrap").hidden = !raw;
    $("#tab-form").setAttribute("aria-selected", String(!raw));
    $("#tab-raw").setAttribute("aria-selected", String(raw));
    $("#tab-form").tabIndex = raw ? -1 : 0;
    $("#tab-raw").tabIndex = raw ? 0 : -1;
  };
  const readFormSafe = () => { try { return readForm($("#input-form")); } catch { return sample; } };
  $("#tab-form").addEventListener("click", () => showTab(false));
  $("#tab-raw").addEventListener("click", () => showTab(true));
  // Tabs as the ARIA pattern has them: arrow keys move between them, the selected one is the tab stop.
  const tabKeys = (ev) => {
    if (!["ArrowLeft", "ArrowRight", "Home", "End"].includes(ev.key) || !formable) return;
    ev.preventDefault();
    const toRaw = ev.key === "End" || (ev.key !== "Home" && ev.target.id === "tab-form");
    showTab(toRaw);
    $(toRaw ? "#tab-raw" : "#tab-form").focus();
  };
  $("#tab-form").addEventListener("keydown", tabKeys);
  $("#tab-raw").addEventListener("keydown", tabKeys);
  $("#input-form").addEventListener("submit", (e) => { e.preventDefault(); $("#run").click(); });
  // Enter in a one-line field, or Ctrl/Cmd+Enter anywhere in the event (the JSON box too), runs it.
  $("#input-panel").addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter" || ev.isComposing || $("#run").disabled) return;
    const oneLine = ev.target.tagName === "INPUT";
    if (ev.ctrlKey || ev.metaKey || (oneLine && !ev.shiftKey)) { ev.preventDefault(); $("#run").click(); }
  });
  const readEvent = () => {
    $("#input-error").textContent = "";
    try { return { event: $("#raw-wrap").hidden ? readForm($("#input-form")) : JSON.parse($("#raw").value || "{}") }; } catch (e) {
      $("#input-error").textContent = "Input is not valid JSON: " + e.message;
      return null;
    }
  };
  const refusal = (e) => {
    const code = e.body?.error?.code;
    if (code === "build_pending" || code === "build_failed") {
      // Not run: its dependencies are not ready and no earlier version can serve.
      return `<div class="notice ${code === "build_failed" ? "failed" : "building"}" id="build-refusal" role="alert">
        <strong>${code === "build_failed" ? "Not run: its dependencies failed to build. Fix them in the editor and save." : "Not run yet: its dependencies are still building. Run it again when the build below is ready."}</strong>
        <p>${esc(e.message)}</p></div>`;
    }
    return `<div class="field-error">${esc(e.message)}</div>`;
  };
  // One call is followed at a time: a new run stops following the previous asynchronous one.
  let runs = 0;
  onLeave(() => { runs++; });
  $("#run").addEventListener("click", async () => {
    const input = readEvent();
    if (!input) return;
    runs++;
    $("#run").disabled = true;
    $("#result").innerHTML = `<div class="empty">Running…</div>`;
    try {
      const v = $("#run-version").value;
      const r = await api("POST", `/api/v1/functions/${encodeURIComponent(f.name)}/invoke${v ? `?version=${encodeURIComponent(v)}` : ""}`, input.event);
      $("#result").innerHTML = resultPanel(r);
    } catch (e) {
      $("#result").innerHTML = refusal(e);
    } finally {
      $("#run").disabled = false;
    }
  });
  $("#run-async").addEventListener("click", async () => {
    const input = readEvent();
    if (!input) return;
    const run = ++runs;
    const result = $("#result");
    $("#run-async").disabled = true;
    result.innerHTML = `<div class="empty">Queueing…</div>`;
    let a, res;
    try {
      ({ data: a, res } = await request("POST", `/api/v1/functions/${encodeURIComponent(f.name)}/invoke`, input.event, { headers: { prefer: "respond-async" } }));
    } catch (e) {
      result.innerHTML = e.body?.error?.code === "async_queue_full"
        ? `<div class="notice failed" role="alert"><strong>Not queued: the asynchronous queue is full.</strong><p>${esc(e.message)}</p></div>` : refusal(e);
      return;
    } finally {
      $("#run-async").disabled = false;
    }
    if (res.status !== 202) { result.innerHTML = resultPanel(a); return; } // the server ran it at once
    result.innerHTML = `<div class="notice" id="async-accepted"><strong>Accepted (202):</strong> execution <span class="mono" id="async-execution">${esc(a.execution_id)}</span>
      · request <a class="mono" id="async-request" href="#/executions/${encodeURIComponent(a.request_id)}">${esc(a.request_id)}</a>
      <p id="async-state" aria-live="polite">${badge(a.status || "queued")} waiting for the first attempt…</p></div><div id="async-result" style="margin-top:12px"></div>`;
    followCall(f, a.request_id, result.querySelector("#async-state"), result.querySelector("#async-result"), () => run === runs);
  });
  drawSchedules(f, $("#schedules-panel"));
  // Saved test events: named events kept on the server per function (like Lambda's shareable
  // ones). Picking one puts it in the form and the JSON box.
  const putEvent = (ev) => {
    $("#raw").value = JSON.stringify(ev, null, 2);
    if (ev && typeof ev === "object" && !Array.isArray(ev) && formable) {
      $("#input-form").innerHTML = `<div class="row">${Object.entries(ev).map(([k, x]) => inputField(k, x, [k])).join("")}</div>`;
    } else if ($("#raw-wrap").hidden) {
      $("#tab-raw").click(); // not an object: only the JSON box can show it
    }
  };
  let events = [];
  const loadEvents = async (select) => {
    events = await api("GET", `/api/v1/functions/${encodeURIComponent(f.name)}/test-events`).catch(() => []);
    $("#te-pick").innerHTML = `<option value="">Sample input</option>${events.map((e) => `<option ${e.name === select ? "selected" : ""}>${esc(e.name)}</option>`).join("")}`;
    $("#te-delete").disabled = !$("#te-pick").value;
  };
  $("#te-pick").addEventListener("change", () => {
    const e = events.find((x) => x.name === $("#te-pick").value);
    $("#te-delete").disabled = !e;
    putEvent(e ? e.event : sample);
  });
  $("#te-save").addEventListener("click", async () => {
    const input = readEvent();
    if (!input) return;
    const name = prompt("Name of the test event (letters, digits, . _ -; up to 64):", $("#te-pick").value || "");
    if (!name) return;
    try {
      await api("PUT", `/api/v1/functions/${encodeURIComponent(f.name)}/test-events/${encodeURIComponent(name)}`, { event: input.event });
      toast(`Test event "${name}" saved`);
      await loadEvents(name);
    } catch (e) { $("#input-error").textContent = e.status === 403 ? "Saving test events needs an admin key." : e.message; }
  });
  $("#te-delete").addEventListener("click", async () => {
    const name = $("#te-pick").value;
    if (!name || !confirm(`Delete the test event "${name}"?`)) return;
    try {
      await api("DELETE", `/api/v1/functions/${encodeURIComponent(f.name)}/test-events/${encodeURIComponent(name)}`);
      toast(`Test event "${name}" deleted`);
      await loadEvents("");
      putEvent(sample);
    } catch (e) { $("#input-error").textContent = e.message; }
  });
  loadEvents("");
  drawVersions(f, $("#versions-panel"), $("#run-version"));
};

/** Line diff of two texts (longest common subsequence): [kind, line] with kind " ", "-" or "+".
 *  Texts past 4 million line pairs are shown as a whole removal and addition instead. */
function lineDiff(a, b) {
  const x = a.split("\n"), y = b.split("\n");
  if (x.length * y.length > 4e6) return [...x.map((l) => ["-", l]), ...y.map((l) => ["+", l])];
  const n = x.length, m = y.length, w = m + 1;
  const t = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) t[i * w + j] = x[i] === y[j] ? t[(i + 1) * w + j + 1] + 1 : Math.max(t[(i + 1) * w + j], t[i * w + j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push([" ", x[i]]); i++; j++; } else if (t[(i + 1) * w + j] >= t[i * w + j + 1]) out.push(["-", x[i++]]); else out.push(["+", y[j++]]);
  }
  while (i < n) out.push(["-", x[i++]]);
  while (j < m) out.push(["+", y[j++]]);
  return out;
}

/** The function's versions: history, a diff of code and settings between any two, running
 *  an old one, and rolling back (which makes a new version from an old one). */
async function drawVersions(f, panel, runPick) {
  const base = `/api/v1/functions/${encodeURIComponent(f.name)}`;
  let list;
  try { list = await api("GET", `${base}/versions`); } catch (e) { panel.innerHTML = `<h2>Versions</h2><p class="field-error">Not loaded: ${esc(e.message)}</p>`; return; }
  for (const v of list) if (v.version !== f.version) runPick.insertAdjacentHTML("beforeend", `<option value="${esc(v.version)}">v${esc(v.version)}</option>`);
  const opts = (sel) => list.map((v) => `<option value="${esc(v.version)}" ${v.version === sel ? "selected" : ""}>v${esc(v.version)}${v.version === f.version ? " (current)" : ""}</option>`).join("");
  const older = list.find((v) => v.version !== f.version)?.version ?? f.version;
  panel.innerHTML = `<h2>Versions</h2>
    <div class="table-wrap" tabindex="0" role="region" aria-label="Versions of ${esc(f.name)}"><table class="stack" id="ver-table"><thead><tr><th scope="col">Version</th><th scope="col">Made</th><th scope="col">Runtime</th><th scope="col">Limits</th><th scope="col">Code</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead><tbody>
    ${list.map((v) => `<tr data-version="${esc(v.version)}"><td data-label="Version">v${esc(v.version)}${v.version === f.version ? ' <span class="badge success">current</span>' : ""}</td>
      <td data-label="Made">${esc(fmtTime(v.created_at))}</td><td data-label="Runtime">${esc(v.language)} · ${badge(v.runtime)}</td>
      <td data-label="Limits">${esc(v.timeout_ms)} ms · ${esc(v.memory_mb)} MB${v.has_dependencies ? ` · deps ${buildBadge(v.build)}` : ""}</td><td data-label="Code">${esc(fmtBytes(v.code_bytes))}</td>
      <td data-label="Actions">${v.version === f.version ? "" : `<button type="button" data-rollback="${esc(v.version)}">Roll back to v${esc(v.version)}</button>`}</td></tr>`).join("")}
    </tbody></table></div>
    ${list.length > 1 ? `<div class="row" style="align-items:flex-end;margin-top:10px">
      <div class="field" style="flex:0"><label for="diff-a">Compare</label><select id="diff-a" style="width:auto">${opts(older)}</select></div>
      <div class="field" style="flex:0"><label for="diff-b">with</label><select id="diff-b" style="width:auto">${opts(f.version)}</select></div></div>
    <div id="ver-diff"></div>` : `<p class="muted">One version so far: each save that changes the code or settings makes the next one.</p>`}`;
  const snap = {};
  const get = async (n) => (snap[n] ||= api("GET", `${base}/versions/${n}`));
  const settings = (s) => ["language", "runtime", "timeout_ms", "memory_mb", "concurrency", "max_retries", "http", "description"].map((k) => `${k}: ${JSON.stringify(s[k])}`)
    .concat(`env: ${JSON.stringify(s.env_names || [])}`, `dependencies: ${JSON.stringify(s.dependencies ?? null)}`).join("\n");
  const showDiff = async () => {
    const out = panel.querySelector("#ver-diff");
    if (!out) return;
    const [a, b] = [Number(panel.querySelector("#diff-a").value), Number(panel.querySelector("#diff-b").value)];
    let sa, sb;
    try { [sa, sb] = await Promise.all([get(a), get(b)]); } catch (e) { out.innerHTML = `<p class="field-error">${esc(e.message)}</p>`; return; }
    const block = (title, d) => {
      const changed = d.some(([k]) => k !== " ");
      return `<h3>${title}${changed ? "" : ' <span class="muted">(same)</span>'}</h3><pre class="diff">${d.map(([k, l]) => `<span class="${k === "+" ? "add" : k === "-" ? "del" : "same"}">${k === "-" ? "−" : esc(k)} ${esc(l)}</span>`).join("")}</pre>`;
    };
    out.innerHTML = `<p class="muted">Lines only in v${esc(a)} start with −, lines only in v${esc(b)} with +.</p>
      ${block("Code", lineDiff(sa.code ?? "", sb.code ?? ""))}${block("Settings", lineDiff(settings(sa), settings(sb)))}`;
  };
  panel.querySelector("#diff-a")?.addEventListener("change", showDiff);
  panel.querySelector("#diff-b")?.addEventListener("change", showDiff);
  showDiff();
  panel.querySelectorAll("[data-rollback]").forEach((b) => b.addEventListener("click", async () => {
    const n = Number(b.dataset.rollback);
    if (!confirm(`Roll back ${f.name} to v${n}? Its code and settings become a new version, v${f.version + 1}; the history is kept.`)) return;
    b.disabled = true;
    try {
      const g = await api("POST", `${base}/rollback`, { version: n });
      toast(`${f.name}: v${g.version} made from v${n}`);
      route();
    } catch (e) { toast(e.status === 403 ? "Rolling back needs an admin key." : e.message, true); b.disabled = false; }
  }));
}

/** Follows an asynchronous call's attempts (GET /executions?request_id=) until it is final:
 *  its latest attempt succeeded, or failed and it is in the dead letters. Stops when
 *  `current()` turns false (another run, or the page was left) or after 10 minutes. */
async function followCall(f, requestId, stateEl, resultEl, current) {
  const until = Date.now() + 600000;
  let shown = "";
  while (current() && Date.now() < until) {
    let list;
    try { list = await api("GET", `/api/v1/executions?${new URLSearchParams({ request_id: requestId, trigger: "all", limit: "100" })}`); } catch (e) {
      stateEl.innerHTML = `<span class="field-error">Not followed: ${esc(e.message)}</span>`;
      return;
    }
    if (!current()) return;
    const latest = list.reduce((a, e) => (!a || (e.attempt ?? 1) > (a.attempt ?? 1) ? e : a), null);
    if (latest) {
      const n = latest.attempt ?? 1;
      const key = `${latest.id}:${latest.status}`;
      if (latest.status === "success") {
        stateEl.innerHTML = `${badge("success")} attempt ${esc(n)} succeeded`;
        resultEl.innerHTML = resultPanel(latest);
        return;
      }
      if (latest.status === "queued") {
        stateEl.innerHTML = `${badge("queued")} attempt ${esc(n)} waiting${n > 1 ? " (retry after a backoff)" : ""}…`;
      } else {
        let dead;
        try { await api("GET", `/api/v1/dead-letters/${encodeURIComponent(requestId)}`); dead = true; } catch (e) {
          dead = e.status === 404 ? false : n > (f.max_retries ?? 2); // no access to the dead letters: count the attempts
        }
        if (!current()) return;
        if (dead) {
          stateEl.innerHTML = `${badge(latest.status)} given up after attempt ${esc(n)}: the call is in the <a href="#/dead-letters">dead letters</a>`;
          resultEl.innerHTML = resultPanel(latest);
          return;
        }
        stateEl.innerHTML = `${badge(latest.status)} attempt ${esc(n)} failed; it will be retried…`;
      }
      if (key !== shown && latest.status !== "queued") resultEl.innerHTML = resultPanel(latest);
      shown = key;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// ---------- Schedules (on a function's page) ----------
function drawSchedules(f, panel) {
  const base = `/api/v1/functions/${encodeURIComponent(f.name)}/schedules`;
  const zones = (() => { try { return Intl.supportedValuesOf("timeZone"); } catch { return ["UTC", "Europe/London", "Europe/Paris", "America/New_York", "Asia/Tokyo"]; } })();
  panel.innerHTML = `<h2>Schedules <span class="muted" style="font-size:13px;font-weight:normal">each tick makes one asynchronous call (trigger <span class="mono">schedule</span>)</span></h2>
    <div class="table-wrap"><table id="sched-table" class="stack"><thead><tr><th scope="col">Cron</th><th scope="col">Time zone</th><th scope="col">State</th><th scope="col">Next run</th><th scope="col">Last run</th><th scope="col">Input</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody id="sched-rows"><tr><td colspan="7" class="empty">Loading…</td></tr></tbody></table></div>
    <form id="sched-form" novalidate style="margin-top:12px"><div class="row">
      <div class="field"><label for="sched-cron">Cron</label><input id="sched-cron" class="mono" required placeholder="*/5 * * * *" spellcheck="false" autocomplete="off" aria-describedby="sched-cron-hint err-sched-cron">
        <div class="field-error" id="err-sched-cron"></div></div>
      <div class="field"><label for="sched-timezone">Time zone</label><input id="sched-timezone" list="sched-zones" value="UTC" spellcheck="false" autocomplete="off" aria-describedby="err-sched-timezone">
        <datalist id="sched-zones">${zones.map((z) => `<option value="${esc(z)}">`).join("")}</datalist><div class="field-error" id="err-sched-timezone"></div></div>
      <div class="field" style="flex:2"><label for="sched-input">Input (JSON)</label><input id="sched-input" class="mono" value="${esc(JSON.stringify(f.sample_input ?? {}))}" aria-describedby="err-sched-input"><div class="field-error" id="err-sched-input"></div></div>
      <div class="field check-field"><label for="sched-enabled"><input type="checkbox" id="sched-enabled" checked> Enabled</label></div>
      <div class="field" style="flex:0 0 auto;min-width:0"><button class="primary" type="submit" id="sched-add" style="white-space:nowrap">Add schedule</button></div>
    </div><div class="field-error" id="err-sched-form"></div>
    <p class="muted hint" id="sched-cron-hint" style="margin:0">Cron: 5 fields (minute hour day-of-month month day-of-week, e.g. <span class="mono">*/5 * * * *</span> or <span class="mono">0 9 * * MON-FRI</span>), or 6 with seconds first.</p></form>`;
  const rows = panel.querySelector("#sched-rows"), form = panel.querySelector("#sched-form");
  const td = (label, html) => `<td data-label="${label}">${html}</td>`;
  const row = (x) => `<tr data-schedule="${esc(x.id)}">
    ${td("Cron", `<span class="mono">${esc(x.cron)}</span>`)}${td("Time zone", esc(x.timezone))}
    ${td("State", x.enabled ? '<span class="badge success">enabled</span>' : '<span class="badge">disabled</span>')}
    ${td("Next run", x.next_run ? `<span title="${esc(x.next_run)}">${esc(fmtTime(x.next_run))}</span>` : '<span class="muted">–</span>')}
    ${td("Last run", x.last_run ? `<span title="${esc(x.last_run)}">${esc(fmtTime(x.last_run))}</span>` : '<span class="muted">never</span>')}
    ${td("Input", `<span class="mono">${esc(JSON.stringify(x.input ?? {}))}</span>`)}
    ${td("Actions", `<button type="button" data-toggle="${esc(x.id)}" data-enabled="${x.enabled}">${x.enabled ? "Disable" : "Enable"}</button> <button type="button" class="danger" data-sched-delete="${esc(x.id)}">Delete</button>`)}</tr>`;
  const load = async () => {
    let list;
    try { list = await api("GET", base); } catch (e) {
      if (e.status === 401) return;
      rows.innerHTML = `<tr><td colspan="7" class="field-error">Schedules not loaded: ${esc(e.message)}</td></tr>`;
      return;
    }
    rows.innerHTML = list.length ? list.map(row).join("") : `<tr><td colspan="7" class="empty">No schedules. Add one below.</td></tr>`;
  };
  rows.addEventListener("click", async (ev) => {
    const toggle = ev.target.closest("[data-toggle]"), del = ev.target.closest("[data-sched-delete]");
    try {
      if (toggle) {
        toggle.disabled = true;
        const enabled = toggle.dataset.enabled !== "true";
        await api("PATCH", `/api/v1/schedules/${encodeURIComponent(toggle.dataset.toggle)}`, { enabled });
        toast(`Schedule ${enabled ? "enabled" : "disabled"}`);
      } else if (del) {
        if (!confirm("Delete this schedule? Calls it already made stay on record.")) return;
        await api("DELETE", `/api/v1/schedules/${encodeURIComponent(del.dataset.schedDelete)}`);
        toast("Schedule deleted");
      } else return;
    } catch (e) { toast(e.status === 403 ? "Changing schedules needs an admin key." : e.message, true); }
    load();
  });
  const fieldErr = (field, msg) => {
    const el = form.querySelector(`#err-sched-${field}`) || form.querySelector("#err-sched-form");
    el.textContent = msg;
    el.closest(".field")?.classList.add("invalid");
  };
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    form.querySelectorAll(".field").forEach((x) => x.classList.remove("invalid"));
    form.querySelectorAll(".field-error").forEach((x) => { x.textContent = ""; });
    const cron = form.querySelector("#sched-cron").value.trim();
    if (!cron) { fieldErr("cron", "a cron pattern is needed, e.g. */5 * * * *"); return; }
    let input;
    try { input = JSON.parse(form.querySelector("#sched-input").value || "{}"); } catch (e) { fieldErr("input", "not valid JSON: " + e.message); return; }
    const body = { cron, input, enabled: form.querySelector("#sched-enabled").checked };
    const tz = form.querySelector("#sched-timezone").value.trim();
    if (tz) body.timezone = tz;
    form.querySelector("#sched-add").disabled = true;
    try {
      const x = await api("POST", base, body);
      toast(`Schedule added${x.next_run ? `; next run ${fmtTime(x.next_run)}` : ""}`);
      form.querySelector("#sched-cron").value = "";
      await load();
    } catch (e) {
      const fields = e.body?.error?.fields;
      if (fields?.length) for (const fe of fields) fieldErr(String(fe.field).replace(/^\./, "").split(/[.[]/)[0], fe.message);
      else fieldErr("form", e.message);
    } finally {
      form.querySelector("#sched-add").disabled = false;
    }
  });
  load();
  const timer = setInterval(() => { if (!document.hidden) load(); }, 15000);
  onLeave(() => clearInterval(timer));
}

// ---------- Executions ----------
pages.executions = async (main, requestId) => {
  const fns = await listFunctions();
  main.innerHTML = `<div class="row" style="justify-content:space-between"><h1>Executions</h1><span class="live" id="live">live</span></div>
    <div class="panel"><div class="row">
      <div class="field"><label for="f-function">Function</label><select id="f-function"><option value="">All</option>${fns.map((f) => `<option>${esc(f.name)}</option>`).join("")}</select></div>
      <div class="field"><label for="f-runtime">Runtime</label><select id="f-runtime"><option value="">All</option><option>docker</option><option>gvisor</option></select></div>
      <div class="field"><label for="f-status">Status</label><select id="f-status"><option value="">All</option><option>success</option><option>error</option><option>timeout</option><option>oom</option><option>queued</option></select></div>
      <div class="field"><label for="f-trigger">Started by</label><select id="f-trigger"><option value="">Calls (not comparisons)</option><option value="api">API calls</option><option value="http">HTTP (function URL) calls</option><option value="async">Asynchronous calls</option><option value="schedule">Schedules</option><option value="compare">Comparison runs</option><option value="all">Everything</option></select></div>
    </div><div class="row">
      <div class="field" style="flex:2"><label for="f-search">Search logs, errors and output</label><input id="f-search" type="search" maxlength="200" placeholder="text, e.g. invoice 42" spellcheck="false"></div>
      <div class="field"><label for="f-since">From</label><input id="f-since" type="datetime-local" step="1"></div>
      <div class="field"><label for="f-until">To</label><input id="f-until" type="datetime-local" step="1"></div>
    </div>${requestId ? `<p id="f-request" style="margin:0">Attempts of one asynchronous call: <span class="mono">${esc(requestId)}</span> · <a href="#/executions">show all executions</a></p>` : ""}</div>
    <div class="panel table-wrap"><div class="muted hint" id="exec-count" aria-live="polite"></div><table id="exec-table"><thead><tr><th>Started</th><th>Function</th><th>Runtime</th><th class="node-col">Node</th><th>Status</th><th>Start</th><th>Duration</th><th>In handler</th><th>Memory</th></tr></thead><tbody id="exec-rows"></tbody></table>
      <div class="row" style="justify-content:center;margin-top:8px"><button type="button" id="exec-more" hidden>Show older</button></div></div>
    <div class="panel" id="exec-detail" hidden></div>`;
  if (requestId) $("#f-trigger").value = "all";
  // datetime-local is the browser's local time; the API takes RFC 3339.
  const isoOf = (v) => (v ? new Date(v).toISOString() : "");
  const filters = () => ({
    function: $("#f-function").value, runtime: $("#f-runtime").value, status: $("#f-status").value, trigger: $("#f-trigger").value, request_id: requestId || "",
    search: $("#f-search").value.trim(), since: isoOf($("#f-since").value), until: isoOf($("#f-until").value),
  });
  // The stream is opened with trigger=all so that changing the filter needs no reconnect.
  const triggerMatches = (t, want) => (want === "all" ? true : want ? t === want : t !== "compare");
  // A live record joins the list only when the list shows the newest records of its filter
  // (a search or an end date is answered by the server, not guessed here).
  const matches = (e, f) => !f.search && !f.until && (!f.function || e.function === f.function) && (!f.runtime || e.runtime === f.runtime) && (!f.status || e.status === f.status) && triggerMatches(e.trigger, f.trigger) && (!f.request_id || e.request_id === f.request_id);
  const triggerNote = (e) => {
    const t = { compare: "comparison", http: "http", async: "async", schedule: "schedule" }[e.trigger];
    return (t ? ` · ${t}` : "") + (e.attempt > 1 ? ` · attempt ${esc(e.attempt)}` : "");
  };
  const row = (e) => `<tr class="clickable" tabindex="0" data-id="${esc(e.id)}" data-status="${esc(e.status)}"><td><time datetime="${esc(e.started_at)}" title="${esc(e.started_at)}">${esc(fmtWhen(e.started_at))}</time></td><td>${esc(e.function)} <span class="muted">v${esc(e.version)}${triggerNote(e)}</span></td><td>${badge(e.runtime)}</td><td class="node-col">${esc(e.node ?? "–")}</td><td>${badge(e.status)}</td><td>${e.cold_start ? "cold" : "warm"}</td><td>${fmtMs(e.duration_ms)}</td><td>${fmtMs(e.exec_ms)}</td><td>${fmtMb(e.memory_bytes)}</td></tr>`;
  // Pages of 100 without payloads (the detail panel reads the whole record); "Show older"
  // follows the server's X-Next-Before cursor.
  let next = null, loads = 0;
  const fetchPage = async (before) => {
    const q = new URLSearchParams(Object.entries(filters()).filter(([, v]) => v));
    q.set("limit", "100");
    q.set("view", "summary");
    if (before) q.set("before", before);
    const { data, res } = await request("GET", "/api/v1/executions?" + q);
    return { list: data || [], next: res.headers.get("x-next-before") };
  };
  const showMore = () => {
    $("#exec-more").hidden = !next;
    $("#exec-count").textContent = `${plural($("#exec-rows").querySelectorAll("tr[data-id]").length, "execution")} shown${next ? "; older ones below" : ""}`;
  };
  const load = async () => {
    const n = ++loads;
    let page;
    try { page = await fetchPage(null); } catch (e) {
      $("#exec-rows").innerHTML = `<tr><td colspan="9" class="field-error">${esc(e.message)}</td></tr>`;
      return;
    }
    if (n !== loads) return; // a newer filter's answer is on its way
    next = page.next;
    $("#exec-rows").innerHTML = page.list.length ? page.list.map(row).join("") : `<tr><td colspan="9" class="empty">No executions match.</td></tr>`;
    $("#exec-table").classList.toggle("with-node", page.list.some((e) => e.node));
    showMore();
  };
  $("#exec-more").addEventListener("click", async () => {
    if (!next) return;
    $("#exec-more").disabled = true;
    try {
      const page = await fetchPage(next);
      next = page.next;
      $("#exec-rows").insertAdjacentHTML("beforeend", page.list.map(row).join(""));
      if (page.list.some((e) => e.node)) $("#exec-table").classList.add("with-node");
      showMore();
    } catch (e) { toast(e.message, true); } finally { $("#exec-more").disabled = false; }
  });
  const openDetail = async (id) => {
    const e = await api("GET", `/api/v1/executions/${id}`);
    const d = $("#exec-detail");
    d.hidden = false;
    d.innerHTML = `<div class="row" style="justify-content:space-between"><h2>${esc(e.function)} · ${esc(e.id)}</h2><button id="close-detail">Close</button></div>
      ${e.request_id ? `<dl class="kv" id="detail-async"><dt>Trigger</dt><dd>${esc(e.trigger)}</dd><dt>Attempt</dt><dd id="detail-attempt">${esc(e.attempt ?? 1)}</dd>
        <dt>Request</dt><dd><a class="mono" id="detail-request" href="#/executions/${encodeURIComponent(e.request_id)}">${esc(e.request_id)}</a> <span class="muted">(every attempt of this call)</span></dd></dl>` : ""}
      <h2>Input</h2><pre>${esc(e.input)}</pre>${resultPanel({ ...e, execution_id: e.id })}`;
    $("#close-detail").addEventListener("click", () => { d.hidden = true; });
    d.scrollIntoView({ behavior: "smooth" });
  };
  $("#exec-rows").addEventListener("click", (ev) => { const tr = ev.target.closest("tr[data-id]"); if (tr) openDetail(tr.dataset.id); });
  $("#exec-rows").addEventListener("keydown", (ev) => { const tr = ev.target.closest("tr[data-id]"); if (tr && ev.key === "Enter") openDetail(tr.dataset.id); });
  // A filter change closes the detail panel: it showed a record of the list before.
  const refilter = () => { $("#exec-detail").hidden = true; load(); };
  main.querySelectorAll("select, #f-since, #f-until").forEach((s) => s.addEventListener("change", refilter));
  let typing;
  $("#f-search").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(refilter, 300); });
  onLeave(() => clearTimeout(typing));
  await load();
  const key = apiKey();
  const es = new EventSource("/api/v1/executions/stream?trigger=all" + (key ? "&access_token=" + encodeURIComponent(key) : ""));
  es.addEventListener("execution", (m) => {
    const e = JSON.parse(m.data);
    const body = $("#exec-rows");
    // An asynchronous attempt may be announced when queued and again when it has run: one row.
    const known = [...body.rows].find((tr) => tr.dataset.id === e.id);
    if (!matches(e, filters())) { known?.remove(); return; }
    body.querySelector(".empty")?.closest("tr")?.remove();
    if (known) { known.outerHTML = row(e); return; }
    body.insertAdjacentHTML("afterbegin", row(e));
    if (e.node) $("#exec-table").classList.add("with-node");
    while (body.rows.length > 1000) body.deleteRow(-1);
  });
  es.onerror = () => { $("#live").textContent = "reconnecting"; };
  es.onopen = () => { $("#live").textContent = "live"; };
  onLeave(() => es.close());
};

// ---------- Dead letters ----------
pages["dead-letters"] = async (main) => {
  main.innerHTML = `<div class="row" style="justify-content:space-between"><h1>Dead letters</h1><span class="muted" id="dl-count"></span></div>
    <p class="muted" style="margin-top:0">Asynchronous calls given up after their last attempt (the function's retries), kept with their input and last error.
      Retry queues one again under its request id; Discard drops it (its attempts stay on record). Both need an admin key.</p>
    <div class="panel table-wrap"><table id="dl-table" class="stack"><thead><tr><th scope="col">Function</th><th scope="col">Trigger</th><th scope="col">Attempts</th><th scope="col">Last error</th><th scope="col">Failed</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody id="dl-rows"><tr><td colspan="6" class="empty">Loading…</td></tr></tbody></table></div>
    <div class="panel" id="dl-detail" hidden></div>`;
  const rows = $("#dl-rows"), count = $("#dl-count"), detail = $("#dl-detail");
  const td = (label, html) => `<td data-label="${label}">${html}</td>`;
  const row = (d) => `<tr class="clickable" tabindex="0" data-letter="${esc(d.id)}">
    ${td("Function", `<a href="#/execute/${encodeURIComponent(d.function)}">${esc(d.function)}</a>`)}${td("Trigger", esc(d.trigger))}${td("Attempts", esc(d.attempts))}
    ${td("Last error", `<span class="dl-error" title="${esc(errText(d.last_error))}">${esc(errText(d.last_error))}</span>`)}
    ${td("Failed", `<span title="${esc(d.failed_at)}">${esc(fmtTime(d.failed_at))}</span>`)}
    ${td("Actions", `<button type="button" data-retry="${esc(d.id)}">Retry</button> <button type="button" class="danger" data-discard="${esc(d.id)}">Discard</button>`)}</tr>`;
  const load = async () => {
    let r;
    try { r = await api("GET", "/api/v1/dead-letters?limit=200"); } catch (e) {
      if (e.status !== 401) rows.innerHTML = `<tr><td colspan="6" class="field-error">Not loaded: ${esc(e.message)}</td></tr>`;
      return;
    }
    const list = r.dead_letters || [];
    count.textContent = r.total > list.length ? `${list.length} of ${r.total} shown` : plural(r.total ?? list.length, "dead letter");
    rows.innerHTML = list.length ? list.map(row).join("") : `<tr><td colspan="6" class="empty">No dead letters: every asynchronous call succeeded or is still being tried.</td></tr>`;
  };
  const show = async (id) => {
    let d;
    try { d = await api("GET", `/api/v1/dead-letters/${encodeURIComponent(id)}`); } catch (e) { toast(e.message, true); return; }
    let input = d.input;
    try { input = JSON.stringify(JSON.parse(d.input), null, 2); } catch { /* shown as it is */ }
    detail.hidden = false;
    detail.innerHTML = `<div class="row" style="justify-content:space-between"><h2>${esc(d.function)} · <span class="mono">${esc(d.id)}</span></h2><button type="button" id="dl-close">Close</button></div>
      <dl class="kv"><dt>Trigger</dt><dd>${esc(d.trigger)}</dd><dt>Attempts</dt><dd>${esc(d.attempts)}</dd>
        <dt>Accepted</dt><dd>${esc(fmtTime(d.enqueued_at))}</dd><dt>Given up</dt><dd>${esc(fmtTime(d.failed_at))}</dd>
        <dt>Attempts' records</dt><dd><a href="#/executions/${encodeURIComponent(d.id)}" id="dl-attempts">every attempt of this call</a></dd></dl>
      <h2>Last error</h2><pre id="dl-last-error">${esc(errText(d.last_error))}</pre>
      <h2>Input</h2><pre id="dl-input">${esc(input)}</pre>`;
    detail.querySelector("#dl-close").addEventListener("click", () => { detail.hidden = true; });
    detail.scrollIntoView({ behavior: "smooth" });
  };
  rows.addEventListener("click", async (ev) => {
    const retry = ev.target.closest("[data-retry]"), discard = ev.target.closest("[data-discard]");
    if (retry) {
      retry.disabled = true;
      try {
        const a = await api("POST", `/api/v1/dead-letters/${encodeURIComponent(retry.dataset.retry)}/retry`);
        toast(`Queued again: execution ${a.execution_id}`);
        detail.hidden = true;
      } catch (e) { toast(e.status === 403 ? "Retrying needs an admin key." : e.message, true); }
      load();
    } else if (discard) {
      if (!confirm("Discard this dead letter? The call will not be tried again.")) return;
      try {
        await api("DELETE", `/api/v1/dead-letters/${encodeURIComponent(discard.dataset.discard)}`);
        toast("Dead letter discarded");
        detail.hidden = true;
      } catch (e) { toast(e.status === 403 ? "Discarding needs an admin key." : e.message, true); }
      load();
    } else {
      const tr = ev.target.closest("tr[data-letter]");
      if (tr && !ev.target.closest("a")) show(tr.dataset.letter);
    }
  });
  rows.addEventListener("keydown", (ev) => { const tr = ev.target.closest("tr[data-letter]"); if (tr && ev.key === "Enter" && ev.target === tr) show(tr.dataset.letter); });
  await load();
  const timer = setInterval(() => { if (!document.hidden) load(); }, 10000);
  onLeave(() => clearInterval(timer));
};

// ---------- charts ----------
function timeChart(el, title, series, data, yLabel, xRange) {
  el.innerHTML = "";
  const width = Math.max(280, el.clientWidth || 600);
  const opts = {
    title, width, height: 240,
    scales: { x: { time: true, range: () => xRange } },
    axes: [{}, { label: yLabel, size: 60 }],
    series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, points: { show: true, size: 4 }, spanGaps: true }))],
  };
  const plot = new uPlot(opts, data, el);
  el.dataset.points = String(data[0].length);
  return plot;
}

function bars(rows, { max, format, cls }) {
  const m = max ?? Math.max(1e-9, ...rows.map((r) => r.value || 0));
  return `<div class="bars">${rows.map((r) => `<div class="bar-row"><span>${esc(r.label)}</span><div class="track"><div class="fill ${esc(r.cls || cls || "")}" style="width:${Math.max(0.5, ((r.value || 0) / m) * 100)}%"></div></div><span class="mono">${esc(format(r.value))}</span></div>`).join("")}</div>`;
}

// ---------- Dashboard ----------
pages.dashboard = async (main) => {
  const fns = await listFunctions();
  main.innerHTML = `<h1>Metrics dashboard</h1><p id="d-cluster" hidden></p>
    <div class="panel"><div class="row">
      <div class="field"><label for="d-function">Function</label><select id="d-function"><option value="">All</option>${fns.map((f) => `<option>${esc(f.name)}</option>`).join("")}</select></div>
      <div class="field"><label for="d-runtime">Runtime</label><select id="d-runtime"><option value="">Both</option><option>docker</option><option>gvisor</option></select></div>
      <div class="field"><label for="d-range">Time range</label><select id="d-range"><option value="15m">Last 15 minutes</option><option value="1h" selected>Last hour</option><option value="24h">Last 24 hours</option><option value="7d">Last 7 days</option></select></div>
    </div></div>
    <div class="stats" id="d-queue" hidden style="margin-bottom:10px"></div>
    <div class="stats" id="d-stats"></div>
    <div class="grid" style="margin-top:16px">
      <div class="panel"><div class="chart" id="chart-latency" role="img" aria-label="Latency over time"></div></div>
      <div class="panel"><div class="chart" id="chart-memory" role="img" aria-label="Peak memory over time"></div></div>
      <div class="panel"><div class="chart" id="chart-calls" role="img" aria-label="Invocations, errors and concurrency over time"></div></div>
      <div class="panel"><h2>Success rate by runtime</h2><div id="d-success"></div></div>
      <div class="panel"><h2>Cold vs warm (p50)</h2><div id="d-cold"></div></div>
      <div class="panel"><h2>Errors</h2><div id="d-errors"></div></div>
    </div>`;
  const rangeSecs = { "15m": 900, "1h": 3600, "24h": 86400, "7d": 604800 };
  const bucketFor = { "15m": "30s", "1h": "1m", "24h": "30m", "7d": "3h" };
  const draw = async () => {
    const fn = $("#d-function").value, rt = $("#d-runtime").value, range = $("#d-range").value;
    const since = new Date(Date.now() - rangeSecs[range] * 1000).toISOString();
    const params = { function: fn, runtime: rt, since };
    const [summary, ts, errors] = await Promise.all([
      summaryRows({ ...params, group_by: "runtime" }),
      api("GET", "/api/v1/metrics/timeseries?" + new URLSearchParams(Object.entries({ ...params, bucket: bucketFor[range] }).filter(([, v]) => v))).catch(() => null),
      api("GET", "/api/v1/errors?" + new URLSearchParams(Object.entries({ function: fn, runtime: rt, since }).filter(([, v]) => v))).catch(() => []),
    ]);
    // Headline figures are the server's exact aggregate per runtime over the filtered runs
    // (an average of per-function medians is not the median of the runs).
    const perRt = {};
    for (const r of summary) perRt[r.runtime] = r;
    const rts = Object.keys(perRt).sort();
    const total = rts.reduce((a, rt) => a + perRt[rt].invocations, 0);
    const ok = rts.reduce((a, rt) => a + perRt[rt].successes, 0);
    $("#d-stats").innerHTML = `<div class="stat"><div class="l">Invocations</div><div class="v" id="stat-invocations">${total}</div></div>
      <div class="stat"><div class="l">Success rate</div><div class="v" id="stat-success">${total ? fmtPct(ok / total) : "–"}</div><div class="muted hint">${esc(total - ok)} failed</div></div>
      ${rts.map((rt) => `<div class="stat"><div class="l">${esc(rt)} p50 · p99</div><div class="v"><span id="stat-p50-${esc(rt)}" data-ms="${esc(perRt[rt].duration_ms.p50)}">${fmtMs(perRt[rt].duration_ms.p50)}</span> <span class="muted">·</span> <span id="stat-p99-${esc(rt)}">${fmtMs(perRt[rt].duration_ms.p99)}</span></div><div class="muted hint">${plural(perRt[rt].invocations, "run")}, end to end</div></div>`).join("")}`;
    $("#d-success").innerHTML = rts.length
      ? bars(rts.map((rt) => ({ label: rt, value: perRt[rt].success_rate, cls: rt })), { max: 1, format: fmtPct })
      : `<div class="empty">No executions in this range.</div>`;
    const coldRows = [];
    for (const rt of rts) {
      const r = perRt[rt];
      if (r.cold_duration_ms.count) coldRows.push({ label: `${rt} cold (${r.cold_duration_ms.count})`, value: r.cold_duration_ms.p50, cls: rt });
      if (r.warm_duration_ms.count) coldRows.push({ label: `${rt} warm (${r.warm_duration_ms.count})`, value: r.warm_duration_ms.p50, cls: rt });
    }
    $("#d-cold").innerHTML = coldRows.length ? bars(coldRows, { format: fmtMs }) : `<div class="empty">No data.</div>`;
    // Errors by type and message, whichever function raised them; the functions are named below.
    const groups = new Map();
    for (const e of Array.isArray(errors) ? errors : []) {
      const key = `${e.error_type}\u0000${e.message}`;
      const g = groups.get(key) || { type: e.error_type, message: e.message, count: 0, functions: new Set() };
      g.count += e.count;
      g.functions.add(e.function);
      groups.set(key, g);
    }
    const errs = [...groups.values()].sort((x, y) => y.count - x.count).slice(0, 10);
    $("#d-errors").innerHTML = errs.length
      ? `<ul class="error-groups">${errs.map((g) => `<li><div class="row" style="justify-content:space-between"><strong>${esc(g.type)}</strong><span class="mono" title="occurrences">${esc(g.count)}×</span></div>
          <div class="dl-error" title="${esc(g.message)}">${esc(g.message || "(no message)")}</div>
          <div class="muted hint">in ${[...g.functions].slice(0, 5).map((f) => `<a href="#/execute/${encodeURIComponent(f)}">${esc(f)}</a>`).join(", ")}${g.functions.size > 5 ? ` and ${g.functions.size - 5} more` : ""}</div></li>`).join("")}</ul>`
      : `<div class="empty">No errors in this range.</div>`;
    // Time series: one line per runtime for p50 and p99 latency, and peak memory.
    const buckets = Array.isArray(ts) ? ts : ts?.buckets || ts?.series || [];
    const times = [...new Set(buckets.map((b) => b.start || b.bucket || b.t))].sort();
    const xs = times.map((t) => new Date(t).getTime() / 1000);
    const runtimes = [...new Set(buckets.map((b) => b.runtime))].filter(Boolean);
    const col = (rt, key) => times.map((t) => { const b = buckets.find((x) => (x.start || x.bucket || x.t) === t && x.runtime === rt); return b ? pick(b, key, key.replace(/_ms$/, "")) : null; });
    const color = { docker: "#2f6fed", gvisor: "#8e44ad" };
    if (xs.length) {
      const lat = [], latData = [xs], mem = [], memData = [xs], calls = [], callData = [xs];
      for (const rt of runtimes) {
        calls.push({ label: `${rt} calls`, color: color[rt] }); callData.push(col(rt, "count"));
        calls.push({ label: `${rt} errors`, color: "#d64545" }); callData.push(col(rt, "errors"));
        calls.push({ label: `${rt} peak concurrency`, color: color[rt] + "88" }); callData.push(col(rt, "peak_concurrency"));
        lat.push({ label: `${rt} p50`, color: color[rt] }); latData.push(col(rt, "p50_ms"));
        lat.push({ label: `${rt} p99`, color: color[rt] + "88" }); latData.push(col(rt, "p99_ms"));
        mem.push({ label: `${rt} peak`, color: color[rt] }); memData.push(col(rt, "peak_memory_bytes").map((v) => (v == null ? null : v / 1048576)));
      }
      const xRange = [Date.parse(since) / 1000, Date.now() / 1000];
      timeChart($("#chart-latency"), "Latency (ms)", lat, latData, "ms", xRange);
      timeChart($("#chart-memory"), "Peak memory (MB)", mem, memData, "MB", xRange);
      timeChart($("#chart-calls"), `Invocations and errors per ${bucketFor[range]}`, calls, callData, "calls", xRange);
    } else {
      $("#chart-latency").innerHTML = `<div class="empty">No executions in this range.</div>`;
      $("#chart-memory").innerHTML = "";
      $("#chart-calls").innerHTML = "";
    }
  };
  const clusterLine = $("#d-cluster");
  const drawCluster = async () => {
    const v = await api("GET", "/api/v1/cluster").catch(() => null);
    clusterLine.hidden = v?.mode !== "cluster";
    if (clusterLine.hidden) return;
    const live = v.nodes.filter((n) => n.live).length;
    clusterLine.innerHTML = `<a href="#/cluster">Cluster: ${live === v.nodes.length ? "" : `${live} of `}${plural(v.nodes.length, "node")} live</a>`;
  };
  // The asynchronous queue, for the whole server (the filters above do not apply).
  const queueStats = $("#d-queue");
  const drawQueue = async () => {
    const q = await api("GET", "/api/v1/queue").catch(() => null);
    queueStats.hidden = !q;
    if (!q) return;
    queueStats.innerHTML = `<div class="stat"><div class="l">Async queue</div><div class="v" id="stat-queue-depth">${esc(q.depth)}</div><div class="muted hint">waiting, backing off or running · at most ${esc(q.max_depth)}</div></div>
      <div class="stat${q.dead_letters ? " warn" : ""}"><div class="l">Dead letters</div><div class="v"><a href="#/dead-letters" id="stat-dead-letters">${esc(q.dead_letters)}</a></div><div class="muted hint">calls given up after their last attempt</div></div>`;
  };
  main.querySelectorAll("select").forEach((s) => s.addEventListener("change", draw));
  await Promise.all([draw(), drawCluster(), drawQueue()]);
  const timer = setInterval(() => { draw(); drawCluster(); drawQueue(); }, 10000);
  onLeave(() => clearInterval(timer));
};

// ---------- Compare ----------
// The comparison under way, kept across pages: leaving Compare does not lose it, coming back
// shows its progress, then its result.
let runningComparison = null;

pages.compare = async (main) => {
  const [fns, past] = await Promise.all([listFunctions(), api("GET", "/api/v1/comparisons").catch(() => [])]);
  main.innerHTML = `<h1>Compare runtimes</h1>
    <div class="panel">${fns.length ? "" : `<p class="empty" id="c-none">No functions to compare yet. <a href="#/create">Create one</a>, then run it here on Docker and on gVisor side by side.</p>`}
    <form id="cmp-form" class="row">
      <div class="field"><label for="c-function">Function</label><select id="c-function" ${fns.length ? "" : "disabled"}>${fns.map((f) => `<option>${esc(f.name)}</option>`).join("")}</select></div>
      <div class="field"><label for="c-iterations">Iterations</label><input id="c-iterations" type="number" min="1" max="1000" value="20"></div>
      <div class="field"><label for="c-concurrency">Concurrency</label><input id="c-concurrency" type="number" min="1" max="16" value="1"></div>
      <div class="field" style="flex:2"><label for="c-input">Input (JSON)</label><input id="c-input" class="mono"></div>
      <div class="field" style="flex:0"><button class="primary" id="c-run" type="submit" ${fns.length ? "" : "disabled"}>Run comparison</button></div>
    </form><div class="field-error" id="c-error"></div></div>
    <div id="c-result"></div>
    <div class="panel"><h2>Past comparisons</h2><div id="c-past" class="table-wrap"></div></div>`;
  const result = $("#c-result"), error = $("#c-error"), runBtn = $("#c-run"), pastEl = $("#c-past");
  const fillInput = () => { const f = fns.find((x) => x.name === $("#c-function").value); $("#c-input").value = JSON.stringify(f?.sample_input ?? {}); };
  $("#c-function").addEventListener("change", fillInput);
  fillInput();
  const listPast = (items) => {
    const list = Array.isArray(items) ? items : items?.comparisons || [];
    pastEl.innerHTML = list.length
      ? `<table class="stack"><thead><tr><th scope="col">When</th><th scope="col">Function</th><th scope="col">Iterations</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead><tbody>${list.map((c) => `<tr><td data-label="When">${esc(fmtTime(c.created_at || c.started_at))}</td><td data-label="Function">${esc(c.function)}</td><td data-label="Iterations">${esc(c.iterations)}</td><td data-label="Actions"><button data-cmp="${esc(c.id)}">Show</button></td></tr>`).join("")}</tbody></table>`
      : `<div class="empty">No comparisons yet.</div>`;
    pastEl.querySelectorAll("[data-cmp]").forEach((b) => b.addEventListener("click", async () => showComparison(await api("GET", `/api/v1/comparisons/${b.dataset.cmp}`))));
  };
  listPast(past);
  let left = false;
  onLeave(() => { left = true; });
  // Progress from the records: each side is a cold call and `iterations` warm ones, all
  // recorded under the function's name with trigger `compare` as they finish.
  const follow = async (run) => {
    runBtn.disabled = true;
    const total = 2 * (run.iterations + 1);
    result.innerHTML = `<div class="panel" id="c-progress" aria-live="polite"><div class="row" style="align-items:center;justify-content:space-between">
        <div><strong>Running ${esc(run.function)} on Docker, then on gVisor…</strong> <span class="mono" id="c-elapsed">0.0 s</span></div>
        <button type="button" id="c-cancel">Stop waiting</button></div>
        <progress id="c-bar" max="${total}" value="0" style="width:100%"></progress><div class="muted hint" id="c-count">0 of ${total} calls done</div></div>`;
    result.querySelector("#c-cancel").addEventListener("click", () => { run.abort.abort(); });
    const tick = setInterval(async () => {
      if (left) { clearInterval(tick); return; }
      const el = result.querySelector("#c-elapsed");
      if (el) el.textContent = `${((Date.now() - run.started) / 1000).toFixed(1)} s`;
    }, 200);
    const poll = setInterval(async () => {
      if (left) { clearInterval(poll); return; }
      const q = new URLSearchParams({ function: run.function, trigger: "compare", since: new Date(run.started - 1000).toISOString(), view: "summary", limit: "1000" });
      const done = await api("GET", "/api/v1/executions?" + q).then((l) => l.length).catch(() => null);
      if (done == null || left) return;
      const bar = result.querySelector("#c-bar");
      if (bar) { bar.value = Math.min(done, total); result.querySelector("#c-count").textContent = `${Math.min(done, total)} of ${total} calls done`; }
    }, 1000);
    try {
      const c = await run.promise;
      if (left) return;
      showComparison(c);
      listPast(await api("GET", "/api/v1/comparisons").catch(() => []));
    } catch (e) {
      if (left) return;
      result.innerHTML = "";
      error.textContent = e.name === "AbortError"
        ? "Stopped waiting. The comparison goes on on the server and will be listed under Past comparisons when it ends."
        : e.message;
    } finally {
      clearInterval(tick);
      clearInterval(poll);
      if (!left) runBtn.disabled = false;
    }
  };
  $("#cmp-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    if (runningComparison) { error.textContent = "A comparison is already running."; return; }
    let input;
    try { input = JSON.parse($("#c-input").value || "{}"); } catch (e) { error.textContent = "Input is not valid JSON: " + e.message; return; }
    const abort = new AbortController();
    const run = { function: $("#c-function").value, iterations: Number($("#c-iterations").value), started: Date.now(), abort };
    run.promise = api("POST", `/api/v1/functions/${encodeURIComponent(run.function)}/compare`, {
      input, iterations: run.iterations, concurrency: Number($("#c-concurrency").value),
    }, { signal: abort.signal });
    runningComparison = run;
    run.promise.then((c) => { run.result = c; }, () => {}).finally(() => { if (runningComparison === run) runningComparison = null; });
    follow(run);
  });
  if (runningComparison) follow(runningComparison);
  function showComparison(c) {
    const side = (rt) => c[rt] || c.runtimes?.[rt] || (c.results || []).find((r) => r.runtime === rt) || {};
    const d = side("docker"), g = side("gvisor");
    const metrics = [
      ["Cold start", "cold_start_ms", fmtMs], ["Warm p50", "warm_p50_ms", fmtMs], ["Warm p99", "warm_p99_ms", fmtMs],
      ["Exec p50", "exec_p50_ms", fmtMs], ["Memory p50", "memory_p50_bytes", fmtMb], ["Memory max", "memory_max_bytes", fmtMb],
      ["Success rate", "success_rate", fmtPct],
    ];
    const ratio = (k) => { const r = pick(c, `ratios.${k}`); if (r != null) return r; const a = pick(d, k), b = pick(g, k); return a && b != null ? b / a : null; };
    // A side where no call succeeded has no figures worth comparing: say so first.
    const failed = [["Docker", d], ["gVisor", g]].filter(([, x]) => (pick(x, "success_rate") ?? 0) === 0).map(([n]) => n);
    const warning = failed.length
      ? `<div class="notice failed" id="c-failed" role="alert"><strong>${failed.length === 2 ? "Every call failed on both runtimes" : `Every call failed on ${failed[0]}`}:</strong> the timings below are of failures, not of the function.
          <a href="#/executions">See the runs' errors</a> (Started by: Comparison runs).</div>` : "";
    $("#c-result").innerHTML = `<div class="panel" id="comparison"><h2>${esc(c.function)}: Docker vs gVisor</h2>${warning}
      <div class="grid">${metrics.slice(0, 6).map(([label, k, f]) => `<div><h2>${label}</h2>${bars([{ label: "docker", value: pick(d, k), cls: "docker" }, { label: "gvisor", value: pick(g, k), cls: "gvisor" }], { format: f })}</div>`).join("")}</div>
      <h2>Ratios</h2><div class="table-wrap"><table id="ratio-table"><thead><tr><th>Figure</th><th>Docker</th><th>gVisor</th><th>gVisor / Docker</th></tr></thead><tbody>
      ${metrics.map(([label, k, f]) => `<tr><td>${label}</td><td>${f(pick(d, k))}</td><td>${f(pick(g, k))}</td><td>${ratio(k) == null ? "–" : ratio(k).toFixed(2) + "×"}</td></tr>`).join("")}
      </tbody></table></div></div>`;
  }
};

// ---------- Cluster ----------
pages.cluster = async (main) => {
  main.innerHTML = `<h1>Cluster</h1>
    <div class="panel"><p id="cl-mode" style="margin:0"></p></div>
    <div class="panel table-wrap"><table id="cl-table" class="stack"><caption>Nodes <span class="muted" id="cl-updated"></span></caption>
      <thead><tr><th scope="col">Node</th><th scope="col">State</th><th scope="col">API</th><th scope="col">Runtimes</th><th scope="col">Sandboxes</th><th scope="col">Idle</th>
      <th scope="col">Running</th><th scope="col">Memory</th><th scope="col">Last heartbeat</th></tr></thead><tbody id="cl-rows"></tbody></table></div>`;
  // Element references, not lookups: a refresh that lands after leaving the page writes nowhere.
  const mode = $("#cl-mode"), rows = $("#cl-rows"), updated = $("#cl-updated");
  const cell = (label, html) => `<td data-label="${label}">${html}</td>`;
  const row = (n, v) => `<tr data-node="${esc(n.id)}">
    ${cell("Node", `<span class="mono">${esc(n.id)}</span>${n.id === v.node ? ' <span class="muted">(this node)</span>' : ""}`)}
    ${cell("State", n.live ? '<span class="badge success">live</span>' : '<span class="badge error">gone</span>')}
    ${cell("API", n.api_url ? `<a href="${esc(n.api_url)}">${esc(n.api_url)}</a>` : '<span class="muted">this server</span>')}
    ${cell("Runtimes", n.runtimes.length ? n.runtimes.map(badge).join(" ") : '<span class="muted">none</span>')}
    ${cell("Sandboxes", `${n.sandboxes} / ${n.max_sandboxes}`)}
    ${cell("Idle", n.idle_sandboxes)}
    ${cell("Running", n.running)}
    ${cell("Memory", `${fmtMemMb(n.memory_committed_mb)} / ${fmtMemMb(n.memory_budget_mb)}`)}
    ${cell("Last heartbeat", v.mode === "single" ? '<span class="muted">–</span>' : fmtAgo(n.last_heartbeat_ms))}</tr>`;
  const draw = async () => {
    let v;
    try { v = await api("GET", "/api/v1/cluster"); } catch (e) {
      updated.textContent = `· not refreshed: ${e.message}`;
      return;
    }
    const live = v.nodes.filter((n) => n.live).length;
    mode.innerHTML = v.mode === "single"
      ? "<strong>Single node (no cluster):</strong> start nodes with <code>--cluster nats://…</code> and <code>--store postgres://…</code> to run several fnbox servers as one (see docs/CLUSTER.md)."
      : `<strong>Cluster mode:</strong> ${live} of ${plural(v.nodes.length, "node")} live. This page was answered by <span class="mono">${esc(v.node ?? "?")}</span>.`;
    rows.innerHTML = v.nodes.map((n) => row(n, v)).join("") || `<tr><td colspan="9" class="empty">No nodes have reported.</td></tr>`;
    updated.textContent = `· updated ${new Date().toLocaleTimeString()}`;
  };
  await draw();
  const timer = setInterval(() => { if (!document.hidden) draw(); }, 2000);
  onLeave(() => clearInterval(timer));
};

// ---------- boot ----------
$("#menu-toggle").addEventListener("click", () => {
  const open = $("#nav").classList.toggle("open");
  $("#menu-toggle").setAttribute("aria-expanded", String(open));
});
$("#key-link").hidden = !apiKey();
$("#key-link").addEventListener("click", () => { setApiKey(""); route(); });
refreshHealth();
setInterval(refreshHealth, 15000);
route();
