/* Race Gateway console: reads the admin JSON API with the admin key kept in this tab's
   sessionStorage (never in a URL), and draws five pages. The DOM is built with
   textContent only: nothing from the API is ever parsed as HTML. */
"use strict";
(function () {
  const STORE = "raceGatewayAdminKey";
  const base = location.pathname.replace(/ui\/?$/, ""); // "/" or a proxy's "/prefix/"
  const PAGES = ["live", "latency", "deployments", "spend", "recent"];
  const REFRESH_MS = { live: 2000, latency: 30000, deployments: 5000, spend: 5000, recent: 3000 };
  const LEVELS = { region_hour: "RH", region: "R", hour: "H", global: "G", prior: "P" };
  const $ = (id) => document.getElementById(id);
  let generation = 0; // bumped on every page change: a stale refresh draws nothing
  let timer = null;
  let deploymentNames = null;

  class AuthError extends Error {}

  async function api(path, key) {
    const res = await fetch(base + path, {
      headers: { Authorization: "Bearer " + (key || sessionStorage.getItem(STORE) || "") },
      cache: "no-store",
      credentials: "omit",
    });
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    const message = body && body.error ? body.error.message : `HTTP ${res.status}`;
    if (res.status === 401) throw new AuthError(message);
    if (!res.ok) throw new Error(message);
    return body;
  }

  // ---- formatting and DOM helpers -------------------------------------------------------
  const fmtInt = (n) => Number(n).toLocaleString("en-US");
  function fmtUsd(v) {
    if (!v) return "$0";
    if (v >= 1) return "$" + v.toFixed(2);
    if (v >= 0.01) return "$" + v.toFixed(4);
    return "$" + v.toFixed(8).replace(/0+$/, "");
  }
  const fmtPct = (share) => (share * 100).toFixed(1) + " %";
  const fmtMs = (v) => (v === null || v === undefined ? "–" : String(v));
  const utcTime = (epoch) => new Date(epoch * 1000).toISOString().slice(11, 23);

  function setValue(node, value, text) {
    node.dataset.value = value === null || value === undefined ? "" : String(value);
    node.textContent = text;
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function cell(tr, text, opts) {
    const td = document.createElement(opts && opts.header ? "th" : "td");
    if (opts && opts.header) td.scope = "row";
    if (opts && opts.num) td.className = "num";
    if (opts && "value" in opts) setValue(td, opts.value, text);
    else td.textContent = text;
    if (opts && opts.field) td.dataset.field = opts.field;
    tr.appendChild(td);
    return td;
  }
  function emptyRow(tbody, columns, text) {
    const tr = tbody.insertRow();
    const td = cell(tr, text);
    td.colSpan = columns;
    td.className = "muted";
  }
  function updated(id) { $(id).textContent = "Updated " + new Date().toISOString().slice(11, 19) + " UTC"; }

  // ---- Live -----------------------------------------------------------------------------
  async function loadLive(gen) {
    const d = await api("admin/live?window=" + $("live-window").value);
    if (gen !== generation) return;
    const t = d.totals;
    setValue($("live-rps"), d.rps, d.rps.toFixed(2));
    setValue($("live-requests"), t.requests, fmtInt(t.requests));
    setValue($("live-errors"), t.errors, fmtInt(t.errors));
    setValue($("live-rejected"), t.rejected, fmtInt(t.rejected));
    setValue($("live-cost"), t.cost_usd, fmtUsd(t.cost_usd));
    setValue($("live-waste"), t.wasted_usd, fmtUsd(t.wasted_usd));
    const tick = d.window_s <= 60 ? 15 : d.window_s <= 120 ? 30 : 60;
    const points = d.series.map((s) => ({
      t: s.t,
      label: s.t === d.now ? "now" : `${s.t - d.now}s`,
      value: s.requests,
      bad: s.errors + s.rejected,
    }));
    // the newest bar is labelled: count ticks back from it
    const offset = (points.length - 1) % tick;
    window.Charts.bars($("chart-rps"), points, { tick, offset });
    const wins = Object.entries(d.wins).map(([dep, w]) => ({
      label: dep, value: w.wins, share: w.share, text: `${fmtPct(w.share)} (${fmtInt(w.wins)})`,
    }));
    wins.sort((a, b) => b.value - a.value);
    window.Charts.hbars($("chart-wins"), wins, { empty: "No race won in this window" });
    const tbody = clear($("live-routes").tBodies[0]);
    const routes = Object.entries(d.routes);
    if (!routes.length) emptyRow(tbody, 5, "No requests in this window");
    for (const [name, r] of routes) {
      const tr = tbody.insertRow();
      tr.dataset.route = name;
      cell(tr, name, { header: true });
      cell(tr, fmtInt(r.requests), { num: true, value: r.requests, field: "requests" });
      cell(tr, fmtInt(r.ttft_samples), { num: true, value: r.ttft_samples, field: "samples" });
      cell(tr, fmtMs(r.ttft_p50_ms), { num: true, value: r.ttft_p50_ms, field: "p50" });
      cell(tr, fmtMs(r.ttft_p95_ms), { num: true, value: r.ttft_p95_ms, field: "p95" });
    }
    updated("live-updated");
  }

  // ---- Latency map ----------------------------------------------------------------------
  async function fillDeploymentChoices() {
    if (deploymentNames !== null) return;
    const d = await api("admin/deployments");
    deploymentNames = Object.keys(d.deployments);
    ["latency-a", "latency-b"].forEach((id, i) => {
      const select = clear($(id));
      for (const name of deploymentNames) select.add(new Option(name, name));
      select.value = deploymentNames[Math.min(i, deploymentNames.length - 1)] || "";
    });
  }

  function heatColour(v, lo, hi) {
    const t = hi > lo ? (Math.log(v) - Math.log(lo)) / (Math.log(hi) - Math.log(lo)) : 0;
    return `hsl(${Math.round(120 * (1 - t))}, 62%, 80%)`;
  }

  function drawMap(container, name, regions, q, lo, hi) {
    clear(container);
    const table = document.createElement("table");
    table.className = "heat";
    table.dataset.deployment = name;
    table.createCaption().textContent = `${name}: TTFT ${q.replace("_ms", "")} (ms)`;
    const head = table.createTHead().insertRow();
    const corner = document.createElement("th");
    corner.scope = "col";
    corner.textContent = "Hour (UTC)";
    head.appendChild(corner);
    const names = Object.keys(regions);
    for (const region of names) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = region;
      head.appendChild(th);
    }
    const body = table.createTBody();
    const nowHour = new Date().getUTCHours();
    for (let hour = 0; hour < 24; hour++) {
      const tr = body.insertRow();
      if (hour === nowHour) tr.className = "now";
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = String(hour).padStart(2, "0") + ":00";
      tr.appendChild(th);
      for (const region of names) {
        const row = { ...regions[region][hour], ...regions[region][hour].by_quantile[q] };
        const td = tr.insertCell();
        const v = row[q];
        Object.assign(td.dataset, {
          region, hour: String(hour), value: String(v), samples: String(row.samples),
          level: row.level, borrowed: String(row.borrowed),
        });
        if (row.level === "prior") td.classList.add("prior");
        td.style.backgroundColor = heatColour(v, lo, hi);
        const value = document.createElement("span");
        value.className = "v";
        value.textContent = String(Math.round(v));
        const meta = document.createElement("span");
        meta.className = "n";
        const samples = row.samples >= 10 ? Math.round(row.samples) : row.samples;
        meta.textContent = `n=${samples} · ${LEVELS[row.level] || row.level}${row.borrowed ? "*" : ""}`;
        td.append(value, meta);
        td.title = `${region} ${hour}:00 UTC: ${v} ms from ${row.samples} samples ` +
          `(level ${row.level}${row.borrowed ? ", borrowed from other regions" : ""})`;
      }
    }
    container.appendChild(table);
    const legend = document.createElement("p");
    legend.className = "legend";
    legend.textContent = `Colour: ${Math.round(lo)} ms (green) to ${Math.round(hi)} ms (red), ` +
      "log scale, shared by both maps. * borrowed from other regions.";
    container.appendChild(legend);
  }

  async function loadLatency(gen) {
    await fillDeploymentChoices();
    const a = $("latency-a").value, b = $("latency-b").value;
    const q = document.querySelector('input[name="latency-q"]:checked').value;
    const [pa, pb] = await Promise.all([a, b].map((name) =>
      api("admin/profiles?deployment=" + encodeURIComponent(name))));
    if (gen !== generation) return;
    const maps = [[a, pa.deployments[a]], [b, pb.deployments[b]]];
    const values = [];
    for (const [, regions] of maps) {
      for (const rows of Object.values(regions)) for (const row of rows) values.push(row[q]);
    }
    const lo = Math.min(...values), hi = Math.max(...values);
    drawMap($("map-a"), a, maps[0][1], q, lo, hi);
    drawMap($("map-b"), b, maps[1][1], q, lo, hi);
  }

  // ---- Deployments ----------------------------------------------------------------------
  function catalogueText(facts) {
    const parts = [];
    if (facts.catalogue_id) parts.push(facts.catalogue_id);
    if (facts.context_window) parts.push("context " + fmtInt(facts.context_window));
    if (facts.max_output_tokens) parts.push("max output " + fmtInt(facts.max_output_tokens));
    if (facts.capabilities && typeof facts.capabilities === "object") {
      const yes = Object.entries(facts.capabilities).filter(([, v]) => v === true).map(([k]) => k);
      if (yes.length) parts.push(yes.join(", "));
    }
    if (facts.deprecated) parts.push("deprecated");
    if (facts.shutdown_date) parts.push("shutdown " + facts.shutdown_date);
    if (facts.successor) parts.push("successor " + facts.successor);
    return parts.length ? parts.join(" · ") : "–";
  }

  function badge(td, text, cls) {
    const span = document.createElement("span");
    span.className = "badge " + cls;
    span.textContent = text;
    td.appendChild(span);
    td.append(" ");
  }

  async function loadDeployments(gen) {
    const [d, u] = await Promise.all([api("admin/deployments"), api("admin/upstreams")]);
    if (gen !== generation) return;
    $("degraded").hidden = !d.state_degraded;
    const tbody = clear($("deployments-table").tBodies[0]);
    for (const [name, dep] of Object.entries(d.deployments)) {
      const up = u.deployments[name] || {};
      const tr = tbody.insertRow();
      tr.dataset.deployment = name;
      cell(tr, name, { header: true });
      cell(tr, `${dep.provider} / ${dep.model}`);
      const state = cell(tr, "", { field: "state" });
      state.dataset.value = dep.state || "";
      badge(state, (dep.state || "unknown").replace("_", "-"), dep.state || "");
      if (dep.rate_limited) badge(state, "rate-limited", "limited");
      const score = dep.health_score;
      cell(tr, score === undefined ? "–" : score.toFixed(2), { num: true, value: score, field: "health" });
      const er = dep.error_rate;
      cell(tr, er === undefined ? "–" : fmtPct(er), { num: true, value: er, field: "error_rate" });
      cell(tr, Number(dep.weight).toFixed(3), { num: true, value: dep.weight, field: "weight" });
      const rl = up.rate_limit;
      let rlText = "no limit";
      if (rl) {
        const parts = [];
        if (rl.rpm !== null) parts.push(`${rl.used_requests ?? "?"} / ${rl.rpm} requests`);
        if (rl.tpm !== null) parts.push(`${rl.used_tokens ?? "?"} / ${rl.tpm} tokens`);
        rlText = parts.join(" · ");
      }
      cell(tr, rlText, { value: rl ? rl.used_requests : "", field: "rate_limit" });
      const warm = u.prewarm ? `target ${up.prewarm_target}` : "pre-warm off";
      cell(tr, `${warm} · pool ${up.pool_open_connections} open`,
        { value: up.pool_open_connections, field: "warm" });
      cell(tr, dep.model_version || "–", { value: dep.model_version || "", field: "version" });
      cell(tr, catalogueText(up.catalogue || {}), { field: "catalogue" });
    }
    const routes = clear($("routes-table").tBodies[0]);
    for (const [name, r] of Object.entries(d.routes)) {
      const tr = routes.insertRow();
      tr.dataset.route = name;
      const b = r.extra_load_budget;
      cell(tr, name, { header: true });
      cell(tr, r.strategy);
      cell(tr, String(r.k), { num: true, value: r.k });
      cell(tr, b.share === null || b.share === undefined ? "none"
        : `${fmtPct(b.share)} extra, at least ${b.min_extra_per_s}/s`);
      cell(tr, fmtPct(b.utilisation), { num: true, value: b.utilisation, field: "utilisation" });
      cell(tr, fmtInt(b.refused), { num: true, value: b.refused, field: "refused" });
    }
    updated("deployments-updated");
  }

  // ---- Spend ----------------------------------------------------------------------------
  function spendRows(table, rows) {
    const tbody = clear(table.tBodies[0]);
    const entries = Object.entries(rows);
    if (!entries.length) emptyRow(tbody, 5, "Nothing spent yet");
    for (const [name, s] of entries) {
      const tr = tbody.insertRow();
      tr.dataset.name = name;
      cell(tr, name, { header: true });
      cell(tr, fmtUsd(s.day.usd), { num: true, value: s.day.usd, field: "day" });
      cell(tr, fmtPct(s.day.losers_share), { num: true, value: s.day.losers_share, field: "day_losers" });
      cell(tr, fmtUsd(s.month.usd), { num: true, value: s.month.usd, field: "month" });
      cell(tr, fmtPct(s.month.losers_share), { num: true, value: s.month.losers_share, field: "month_losers" });
    }
  }

  async function loadSpend(gen) {
    const d = await api("admin/costs");
    if (gen !== generation) return;
    $("spend-note").textContent = `This instance since ${new Date(d.since * 1000).toISOString()
      .slice(0, 19).replace("T", " ")} UTC; today is ${d.day}, this month ${d.month} (UTC). ` +
      "Losers are attempts that did not win their race (cancelled, failed, timed out): " +
      "they were billed too.";
    spendRows($("spend-keys"), d.keys);
    spendRows($("spend-deployments"), d.deployments);
    const items = Object.entries(d.deployments)
      .filter(([, s]) => s.month.usd > 0)
      .map(([name, s]) => ({
        label: name, total: s.month.usd, part: s.month.losers_usd,
        text: `${fmtUsd(s.month.usd)} · ${fmtPct(s.month.losers_share)} losers`,
      }))
      .sort((x, y) => y.total - x.total);
    window.Charts.stacked($("chart-spend"), items, { empty: "Nothing spent this month" });
    updated("spend-updated");
  }

  // ---- Recent requests ------------------------------------------------------------------
  function attemptText(a) {
    let time = "";
    if (a.ttft_ms !== null) time = ` ${a.ttft_ms} ms`;
    else if (a.censored_ttft_ms !== null) time = ` ≥${a.censored_ttft_ms} ms`;
    const err = a.error ? ` (${a.error.status} ${a.error.type})` : "";
    return `${a.deployment} ${a.outcome.replace("_", " ")}${time}${err}`;
  }

  async function loadRecent(gen) {
    const d = await api("admin/recent?limit=" + $("recent-limit").value);
    if (gen !== generation) return;
    const tbody = clear($("recent-table").tBodies[0]);
    if (!d.records.length) emptyRow(tbody, 9, "No request yet");
    for (const r of d.records) {
      const tr = tbody.insertRow();
      tr.dataset.requestId = r.request_id;
      cell(tr, utcTime(r.at));
      const id = cell(tr, r.request_id.slice(0, 16) + "…", { header: true });
      id.title = r.request_id;
      cell(tr, r.route || "–", { value: r.route || "", field: "route" });
      const status = cell(tr, `${r.status} ${r.outcome.replace("_", " ")}` +
        (r.reason ? ` (${r.reason})` : ""), { value: r.status, field: "status" });
      status.dataset.outcome = r.outcome;
      cell(tr, r.winner || "–", { value: r.winner || "", field: "winner" });
      cell(tr, fmtMs(r.ttft_ms), { num: true, value: r.ttft_ms, field: "ttft" });
      cell(tr, `${fmtInt(r.input_tokens)} / ${fmtInt(r.output_tokens)}`,
        { num: true, value: r.output_tokens, field: "tokens" });
      cell(tr, fmtUsd(r.cost_usd), { num: true, value: r.cost_usd, field: "cost" });
      const list = document.createElement("ul");
      list.className = "attempts";
      for (const a of r.attempts) {
        const li = document.createElement("li");
        li.className = a.outcome;
        Object.assign(li.dataset, {
          deployment: a.deployment, outcome: a.outcome,
          ttft: a.ttft_ms === null ? "" : String(a.ttft_ms),
        });
        li.textContent = attemptText(a);
        list.appendChild(li);
      }
      const td = cell(tr, "", { field: "attempts" });
      td.appendChild(list);
    }
    updated("recent-updated");
  }

  // ---- navigation, refresh, login -------------------------------------------------------
  const LOADERS = {
    live: loadLive, latency: loadLatency, deployments: loadDeployments,
    spend: loadSpend, recent: loadRecent,
  };

  async function refresh(page, gen) {
    if (document.hidden && gen === generation) { // a background tab asks nothing
      timer = setTimeout(() => refresh(page, gen), REFRESH_MS[page]);
      return;
    }
    try {
      await LOADERS[page](gen);
      if (gen === generation) $("status").textContent = "";
    } catch (e) {
      if (e instanceof AuthError) return logout("The admin key was refused: sign in again.");
      if (gen === generation) $("status").textContent = "Could not refresh: " + e.message;
    }
    if (gen === generation) timer = setTimeout(() => refresh(page, gen), REFRESH_MS[page]);
  }

  function show(page, focus) {
    clearTimeout(timer);
    const gen = ++generation;
    for (const name of PAGES) $("page-" + name).hidden = name !== page;
    for (const link of document.querySelectorAll("#nav a")) {
      if (link.dataset.page === page) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    document.title = `${page[0].toUpperCase()}${page.slice(1)} · Race Gateway console`;
    if (focus) $(page + "-title").focus();
    refresh(page, gen);
  }

  function route(focus) {
    if (!sessionStorage.getItem(STORE)) return showLogin();
    const page = location.hash.slice(1);
    show(PAGES.includes(page) ? page : "live", focus);
  }

  function showLogin(message) {
    clearTimeout(timer);
    generation++;
    for (const name of PAGES) $("page-" + name).hidden = true;
    $("nav").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("admin-key").focus();
  }

  function logout(message) {
    sessionStorage.removeItem(STORE);
    deploymentNames = null;
    showLogin(message);
  }

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("admin-key");
    const key = input.value.trim();
    $("login-error").textContent = "";
    try {
      await api("admin/deployments", key);
    } catch (e) {
      $("login-error").textContent = e instanceof AuthError ? "That key was refused." : e.message;
      input.focus();
      return;
    }
    sessionStorage.setItem(STORE, key);
    input.value = "";
    $("login").hidden = true;
    $("nav").hidden = false;
    $("logout").hidden = false;
    route(true);
  });
  $("logout").addEventListener("click", () => logout("Signed out."));
  window.addEventListener("hashchange", () => route(true));
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && sessionStorage.getItem(STORE)) route(false); // fresh at once
  });
  $("live-window").addEventListener("change", () => show("live", false));
  $("recent-limit").addEventListener("change", () => show("recent", false));
  for (const id of ["latency-a", "latency-b"]) $(id).addEventListener("change", () => show("latency", false));
  for (const radio of document.querySelectorAll('input[name="latency-q"]')) {
    radio.addEventListener("change", () => show("latency", false));
  }

  if (sessionStorage.getItem(STORE)) {
    $("login").hidden = true;
    $("nav").hidden = false;
    $("logout").hidden = false;
    route(false);
  } else {
    showLogin();
  }
})();
