// leadx live dashboard. Polls GET /v1/admin/dashboard once a second with the
// admin token the operator typed (kept in sessionStorage, this tab only) and
// draws tables, cap bars and sparklines from the answers. Every string from
// the server goes into the page as text (textContent), never as markup.
"use strict";

(function () {
  const TOKEN_KEY = "leadx.admin_token";
  const POLL_MS = 1000;
  const HISTORY = 60; // polls kept for the sparklines
  const SVG_NS = "http://www.w3.org/2000/svg";

  const history = []; // [{buyers: {id: party}, publishers: {id: party}, totals}]
  const seen = new Set(); // ping ids already drawn, so new rows can flash
  let timer = null;
  let firstDraw = true;

  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function td(text, cls) {
    return el("td", cls, text);
  }

  const usd = (v) => (v === null || v === undefined ? "–" : (v < 0 ? "-$" : "$") + Math.abs(v).toFixed(2));
  const pct = (v) => (v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%");
  const ms = (v) => (v === null || v === undefined ? "–" : v < 10 ? v.toFixed(1) : Math.round(v).toString());
  const int = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US"));

  function badge(word, cls) {
    return el("span", "badge b-" + (cls || word), word.replace("_", " "));
  }

  // An inline SVG sparkline of `values` (numbers), drawn with DOM calls.
  function sparkline(values, width, height) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    if (values.length < 2) return svg;
    const max = Math.max(1e-9, ...values);
    // Right-aligned; spread over at least 12 points so a young history
    // does not stretch a few polls across the whole width.
    const step = width / (Math.max(values.length, 12) - 1);
    const x0 = width - step * (values.length - 1);
    const pts = values.map((v, i) => {
      const x = x0 + i * step;
      const y = height - 1 - (v / max) * (height - 3);
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    const area = document.createElementNS(SVG_NS, "polygon");
    area.setAttribute("points", x0.toFixed(1) + "," + height + " " + pts.join(" ") + " " + width + "," + height);
    const line = document.createElementNS(SVG_NS, "polyline");
    line.setAttribute("points", pts.join(" "));
    svg.appendChild(area);
    svg.appendChild(line);
    return svg;
  }

  // Per-poll increments of a counter picked by `pick` from the history.
  function deltas(pick) {
    const out = [];
    for (let i = 1; i < history.length; i++) {
      const a = pick(history[i - 1]);
      const b = pick(history[i]);
      out.push(a === undefined || b === undefined ? 0 : Math.max(0, b - a));
    }
    return out;
  }

  function byId(list) {
    const m = {};
    for (const p of list) m[p.id] = p;
    return m;
  }

  function totals(d) {
    const t = { pings: 0, sold: 0, revenue: 0, payout: 0, margin: 0, timeouts: 0 };
    for (const p of d.publishers) {
      t.pings += p.pings; t.sold += p.sold; t.revenue += p.revenue; t.payout += p.payout; t.margin += p.margin;
    }
    for (const b of d.buyers) t.timeouts += b.timeouts;
    return t;
  }

  function drawCards(t) {
    const cards = $("cards");
    const items = [
      ["Pings", int(t.pings), deltas((h) => h.totals.pings)],
      ["Sold", int(t.sold), deltas((h) => h.totals.sold)],
      ["Fill rate", pct(t.pings ? t.sold / t.pings : null), null],
      ["Revenue", usd(t.revenue), deltas((h) => h.totals.revenue)],
      ["Margin", usd(t.margin), deltas((h) => h.totals.margin)],
      ["Buyer time-outs", int(t.timeouts), deltas((h) => h.totals.timeouts)],
    ];
    cards.replaceChildren();
    for (const [label, value, series] of items) {
      const k = el("div", "kpi");
      k.appendChild(el("div", "label", label));
      k.appendChild(el("div", "value", value));
      if (series) k.appendChild(sparkline(series, 170, 28));
      cards.appendChild(k);
    }
  }

  function capBars(caps) {
    const box = el("div", "caps");
    for (const [period, c] of Object.entries(caps || {})) {
      if (c.limit === null || c.limit === undefined) continue;
      const share = c.limit > 0 ? Math.min(1, c.used / c.limit) : 1;
      const row = el("div", "cap");
      const money = period.endsWith("budget");
      const used = money ? usd(c.used) : int(c.used);
      const limit = money ? usd(c.limit) : int(c.limit);
      row.appendChild(el("span", null, period.replace("_", " ") + " " + used + "/" + limit));
      const bar = el("div", "bar" + (share >= 1 ? " full" : share >= 0.8 ? " high" : ""));
      const fill = el("span");
      fill.style.width = (share * 100).toFixed(1) + "%";
      bar.appendChild(fill);
      row.appendChild(bar);
      box.appendChild(row);
    }
    if (!box.childElementCount) box.appendChild(el("span", "dim", "no caps"));
    return box;
  }

  const hasReturns = (list) => list.some((p) => p.return_rate !== undefined);

  function showReturnColumn(table, show) {
    for (const c of table.querySelectorAll("th.ret")) c.hidden = !show;
  }

  function latency(p) {
    const r = p.response_ms || {};
    return ms(r.p50) + " / " + ms(r.p99);
  }

  function drawBuyers(buyers) {
    const table = $("buyers");
    const ret = hasReturns(buyers);
    showReturnColumn(table, ret);
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const b of buyers) {
      const tr = el("tr");
      tr.dataset.buyer = b.id;
      tr.appendChild(td(b.id, "id"));
      const health = td();
      health.appendChild(b.breaker ? badge(b.breaker) : el("span", "dim", "no breaker"));
      tr.appendChild(health);
      const flight = b.concurrency_max ? b.in_flight + " / " + b.concurrency_max : "–";
      tr.appendChild(td(flight, "dim"));
      tr.appendChild(td(int(b.pings), "n"));
      tr.appendChild(td(pct(b.bid_rate), "n"));
      tr.appendChild(td(pct(b.win_rate), "n"));
      tr.appendChild(td(pct(b.fill_rate), "n"));
      tr.appendChild(td(usd(b.revenue), "n"));
      tr.appendChild(td(usd(b.margin), "n" + (b.margin < 0 ? " neg" : "")));
      tr.appendChild(td(latency(b), "n"));
      tr.appendChild(td(int(b.timeouts), "n" + (b.timeouts > 0 ? " neg" : "")));
      const r = td(pct(b.return_rate), "n");
      r.hidden = !ret;
      tr.appendChild(r);
      const caps = td();
      caps.appendChild(capBars(b.caps));
      tr.appendChild(caps);
      const spark = td();
      spark.appendChild(sparkline(deltas((h) => (h.buyers[b.id] || {}).pings), 120, 22));
      tr.appendChild(spark);
      body.appendChild(tr);
    }
  }

  function drawPublishers(publishers) {
    const table = $("publishers");
    const ret = hasReturns(publishers);
    showReturnColumn(table, ret);
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const p of publishers) {
      const tr = el("tr");
      tr.appendChild(td(p.id, "id"));
      tr.appendChild(td(int(p.pings), "n"));
      tr.appendChild(td(pct(p.bid_rate), "n"));
      tr.appendChild(td(pct(p.fill_rate), "n"));
      tr.appendChild(td(int(p.sold), "n"));
      tr.appendChild(td(usd(p.revenue), "n"));
      tr.appendChild(td(usd(p.payout), "n"));
      tr.appendChild(td(usd(p.margin), "n" + (p.margin < 0 ? " neg" : "")));
      tr.appendChild(td(latency(p), "n"));
      const r = td(pct(p.return_rate), "n");
      r.hidden = !ret;
      tr.appendChild(r);
      const spark = td();
      spark.appendChild(sparkline(deltas((h) => (h.publishers[p.id] || {}).pings), 120, 22));
      tr.appendChild(spark);
      body.appendChild(tr);
    }
  }

  function clock(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    const pad = (n, w) => String(n).padStart(w || 2, "0");
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." + pad(d.getMilliseconds(), 3);
  }

  function callChip(c) {
    const chip = el("span", "call o-" + c.outcome);
    chip.appendChild(el("b", null, c.buyer));
    let text = " " + c.stage + " " + c.outcome.replace("_", " ");
    if (c.reason && c.reason !== c.outcome) text += " (" + c.reason + ")";
    if (c.price !== undefined && c.price !== null) text += " " + usd(c.price / 100);
    if (c.latency_us) text += " " + ms(c.latency_us / 1000) + " ms";
    chip.appendChild(document.createTextNode(text));
    return chip;
  }

  function drawLog(txs) {
    const body = $("log").tBodies[0];
    body.replaceChildren();
    for (const t of txs) {
      const status = t.post_status || t.ping_status;
      const tr = el("tr", "tx" + (status === "sold" ? " sale" : ""));
      tr.dataset.pingId = t.ping_id;
      if (t.lead_id) tr.dataset.leadId = t.lead_id;
      tr.dataset.status = status;
      if (!seen.has(t.ping_id)) {
        if (!firstDraw) tr.classList.add("new");
        seen.add(t.ping_id);
      }
      tr.appendChild(td(clock(t.created_at), "dim"));
      tr.appendChild(td(t.publisher, "id"));
      tr.appendChild(td(t.vertical));
      const kind = td(t.direct ? "direct" : t.lead_id ? "ping+post" : "ping");
      if (t.test) kind.appendChild(badge("test"));
      tr.appendChild(kind);
      const result = td();
      result.appendChild(badge(status));
      tr.appendChild(result);
      tr.appendChild(td(t.buyer || "", "id"));
      tr.appendChild(td(usd(t.price !== undefined ? t.price : t.best_price), "n"));
      tr.appendChild(td(usd(t.payout !== undefined ? t.payout : t.best_payout), "n"));
      tr.appendChild(td(ms(t.auction_us / 1000) + " ms", "n dim"));
      const calls = td();
      const box = el("div", "calls");
      for (const c of (t.ping_calls || []).concat(t.post_calls || [])) box.appendChild(callChip(c));
      calls.appendChild(box);
      tr.appendChild(calls);
      body.appendChild(tr);
    }
    if (seen.size > 5000) seen.clear();
    firstDraw = false;
  }

  function draw(d) {
    const t = totals(d);
    history.push({ buyers: byId(d.buyers), publishers: byId(d.publishers), totals: t });
    if (history.length > HISTORY) history.shift();
    drawCards(t);
    drawBuyers(d.buyers);
    drawPublishers(d.publishers);
    drawLog(d.transactions);
    $("generated").textContent = "as of " + d.generated_at;
  }

  function setStatus(text, cls) {
    const s = $("status");
    s.textContent = text;
    s.className = "status " + cls;
  }

  function showLogin(message) {
    if (timer) clearTimeout(timer);
    timer = null;
    $("board").hidden = true;
    $("signout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    setStatus("not connected", "idle");
    $("token").focus();
  }

  async function poll() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return showLogin();
    try {
      const resp = await fetch("/v1/admin/dashboard", {
        headers: { Authorization: "Bearer " + token },
        cache: "no-store",
        credentials: "omit",
      });
      if (resp.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        return showLogin("The admin token was refused.");
      }
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      draw(await resp.json());
      setStatus("live", "ok");
    } catch (e) {
      setStatus("reconnecting… (" + e.message + ")", "err");
    }
    timer = setTimeout(poll, POLL_MS);
  }

  function start() {
    $("login").hidden = true;
    $("board").hidden = false;
    $("signout").hidden = false;
    setStatus("connecting…", "idle");
    poll();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const token = $("token").value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      $("token").value = "";
      start();
    });
    $("signout").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin();
    });
    if (sessionStorage.getItem(TOKEN_KEY)) start();
    else showLogin();
  });
})();
