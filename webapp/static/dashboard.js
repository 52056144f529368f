// facefleet dashboard: polls /api/v1/dashboard and redraws cards, tables and four
// small canvas line charts. No libraries, no external scripts.
"use strict";

(function () {
  const root = document.getElementById("dashboard");
  const api = root.dataset.api;
  const pollMs = Number(root.dataset.pollMs) || 1000;
  const eventsOff = root.dataset.eventsOff;
  const SPAN_S = 120; // seconds shown on every chart
  const history = { t: [], visible: [], inFlight: [], desired: [], actual: [], p50: [], p95: [] };
  const $ = (id) => document.getElementById(id);

  // ---- formatting --------------------------------------------------------------------
  function secs(v) {
    if (v === null || v === undefined) return "–";
    return v < 1 ? `${Math.round(v * 1000)} ms` : `${v.toFixed(2)} s`;
  }
  function num(v) { return v === null || v === undefined ? "–" : String(v); }
  function clock(epoch) {
    return epoch ? new Date(epoch * 1000).toTimeString().slice(0, 8) : "–";
  }
  function setText(id, text) { $(id).textContent = text; }

  // ---- tables ------------------------------------------------------------------------
  function fillTable(id, rows, empty, build) {
    const body = document.querySelector(`#${id} tbody`);
    const cols = document.querySelectorAll(`#${id} thead th`).length;
    body.replaceChildren();
    if (!rows.length) {
      const tr = body.insertRow();
      const td = tr.insertCell();
      td.colSpan = cols;
      td.className = "empty";
      td.textContent = empty;
      return;
    }
    for (const row of rows) {
      const tr = body.insertRow();
      for (const cell of build(row, tr)) {
        const td = tr.insertCell();
        if (cell && typeof cell === "object") {
          td.textContent = cell.text;
          if (cell.cls) td.className = cell.cls;
        } else {
          td.textContent = cell;
        }
      }
    }
  }

  // ---- charts ------------------------------------------------------------------------
  // A round tick step so that 4 steps cover v: 1, 2, 2.5 or 5 times a power of ten
  // (whole numbers only for counts).
  function niceStep(v, whole) {
    const raw = Math.max(v, 1e-9) / 4;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) {
      const step = m * p;
      if (step >= raw && (!whole || Number.isInteger(step))) return step;
    }
    return Math.ceil(raw);
  }

  // series: [{label, color, xs: [epoch s], ys: [number|null], step?}]
  function lineChart(canvas, series, now, unit) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || canvas.width;
    const height = canvas.clientHeight || canvas.height;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const pad = { l: 44, r: 10, t: 22, b: 20 };
    const w = width - pad.l - pad.r;
    const h = height - pad.t - pad.b;
    const x0 = now - SPAN_S;
    let top = 0;
    for (const s of series) for (const y of s.ys) if (y !== null && y > top) top = y;
    const step = niceStep(top > 0 ? top : (unit === "s" ? 0.1 : 4), unit !== "s");
    top = step * 4;
    const X = (t) => pad.l + ((t - x0) / SPAN_S) * w;
    const Y = (v) => pad.t + h - (v / top) * h;
    g.font = "11px system-ui, sans-serif";
    g.strokeStyle = "#e3e3e3";
    g.fillStyle = "#666";
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) { // horizontal grid and y labels
      const v = (top * i) / 4;
      const y = Y(v);
      g.beginPath(); g.moveTo(pad.l, y); g.lineTo(pad.l + w, y); g.stroke();
      const label = unit === "s" ? secs(v) : String(v);
      g.textAlign = "right"; g.textBaseline = "middle";
      g.fillText(label, pad.l - 4, y);
    }
    g.textAlign = "center"; g.textBaseline = "top";
    for (let ago = SPAN_S; ago >= 0; ago -= 30) {
      g.fillText(ago ? `-${ago}s` : "now", X(now - ago), pad.t + h + 4);
    }
    let points = 0;
    let legendX = pad.l;
    for (const s of series) {
      g.strokeStyle = s.color;
      g.lineWidth = 2;
      g.setLineDash(s.dash ? [6, 4] : []);
      g.beginPath();
      let pen = false;
      for (let i = 0; i < s.xs.length; i++) {
        const t = s.xs[i];
        const v = s.ys[i];
        if (v === null || v === undefined || t < x0) { pen = false; continue; }
        const x = X(t);
        const y = Y(v);
        if (!pen) { g.moveTo(x, y); pen = true; } else { g.lineTo(x, y); }
        points++;
      }
      g.stroke();
      g.setLineDash([]);
      g.fillStyle = s.color; // legend
      g.fillRect(legendX, 6, 10, 10);
      g.fillStyle = "#333";
      g.textAlign = "left"; g.textBaseline = "middle";
      g.fillText(s.label, legendX + 14, 11);
      legendX += 24 + g.measureText(s.label).width;
    }
    canvas.dataset.points = String(points);
  }

  function remember(now, fleet, events) {
    const q = fleet.queue || {};
    const lat = events && events.latency_s;
    history.t.push(now);
    history.visible.push(q.ok ? q.visible : null);
    history.inFlight.push(q.ok ? q.in_flight : null);
    history.desired.push(fleet.desired ?? null);
    history.actual.push(fleet.actual ?? null);
    history.p50.push(lat ? lat.p50 : null);
    history.p95.push(lat ? lat.p95 : null);
    while (history.t.length && history.t[0] < now - SPAN_S - 5) {
      for (const key of Object.keys(history)) history[key].shift();
    }
  }

  function drawCharts(now, events) {
    const t = history.t;
    lineChart($("chart-queue"), [
      { label: "visible", color: "#1f77b4", xs: t, ys: history.visible },
      { label: "in flight", color: "#ff7f0e", xs: t, ys: history.inFlight },
    ], now);
    lineChart($("chart-instances"), [
      { label: "desired", color: "#9467bd", xs: t, ys: history.desired, dash: true },
      { label: "actual", color: "#2ca02c", xs: t, ys: history.actual },
    ], now);
    const tp = events ? events.throughput : { start: now, succeeded: [], failed: [] };
    const xs = tp.succeeded.map((_, i) => tp.start + i + 0.5);
    lineChart($("chart-throughput"), [
      { label: "succeeded", color: "#2ca02c", xs: xs, ys: tp.succeeded },
      { label: "failed", color: "#d62728", xs: xs, ys: tp.failed },
    ], now);
    lineChart($("chart-latency"), [
      { label: "p50", color: "#1f77b4", xs: t, ys: history.p50 },
      { label: "p95", color: "#d62728", xs: t, ys: history.p95 },
    ], now, "s");
  }

  // ---- sections ----------------------------------------------------------------------
  function renderFleet(fleet) {
    const q = fleet.queue || {};
    setText("queue-visible", q.ok ? num(q.visible) : "?");
    setText("queue-in-flight", q.ok ? num(q.in_flight) : "?");
    setText("instances-desired-actual", `${num(fleet.desired)} / ${num(fleet.actual)}`);
    setText("instances-max", fleet.max !== null && fleet.max !== undefined
      ? `max ${fleet.max}` : "");
    const auto = fleet.autoscaler || {};
    const notes = [];
    if (!q.ok) notes.push(`Queue: ${q.message}`);
    if (!auto.published) notes.push(`Autoscaler: ${auto.reason || "no state published"}.`);
    else if (auto.stale) notes.push(`Autoscaler state is ${Math.round(auto.age_s)} s old ` +
      "(is the controller running?).");
    $("autoscaler-note").textContent = notes.join(" ");
    $("autoscaler-note").className = notes.length ? "note warn" : "note";
    const chips = $("instance-states");
    chips.replaceChildren();
    const states = Object.entries(fleet.by_state || {});
    if (!states.length) {
      const li = document.createElement("li");
      li.textContent = "no instances";
      chips.appendChild(li);
    }
    for (const [state, count] of states) {
      const li = document.createElement("li");
      li.className = `state-${state}`;
      li.dataset.state = state;
      li.textContent = `${state}: ${count}`;
      chips.appendChild(li);
    }
    fillTable("instances", fleet.instances || [], "no instances", (i, tr) => {
      tr.title = i.id || "";
      return [i.name || "–", { text: i.state || "?", cls: `state-${i.state}` },
        i.since ? clock(i.since) : (i.launch_time || "–")];
    });
    fillTable("decisions", fleet.decisions || [], "no decisions published", (d) => {
      const load = d.load ? `${d.load.visible} + ${d.load.in_flight}` : "?";
      const when = d.repeat > 1 ? `${clock(d.time)} (×${d.repeat})` : clock(d.time);
      return [when, load, num(d.current), num(d.desired), d.action || "–", d.reason || ""];
    });
  }

  function renderEvents(now, events, monitor) {
    if (!events) {
      $("events-note").textContent = `Celery events are off: ${eventsOff || monitor.off_reason}.`;
      $("events-note").className = "note warn";
      return;
    }
    const tasks = events.tasks;
    setText("workers-online", String(events.workers_online));
    setText("tasks-rate", tasks.per_second.toFixed(1));
    setText("tasks-rate-window", `last ${events.rate_window_s} s`);
    const lat = events.latency_s;
    setText("latency", lat ? `${secs(lat.p50)} / ${secs(lat.p95)}` : "–");
    setText("tasks-done", `${tasks.succeeded} / ${tasks.failed}`);
    setText("tasks-in-progress", `${tasks.in_progress} running now`);
    setText("window-s", String(events.window_s));
    setText("runtime-p50", events.runtime_s ? secs(events.runtime_s.p50) : "–");
    setText("event-delay-p50", events.event_delay_s ? secs(events.event_delay_s.p50) : "–");
    const note = monitor.state === "listening" ? "" :
      `Event listener: ${monitor.state}${monitor.error ? ` (${monitor.error})` : ""}.`;
    $("events-note").textContent = note;
    $("events-note").className = note ? "note warn" : "note";
    fillTable("workers", events.workers, "no worker has sent an event yet", (w, tr) => {
      tr.dataset.hostname = w.hostname;
      tr.dataset.state = w.state;
      const beat = w.heartbeat_age_s === null ? "never" : `${w.heartbeat_age_s.toFixed(1)} s ago`;
      return [w.hostname, { text: w.state, cls: `state-${w.state}` }, beat, num(w.active),
        num(w.processed), String(w.succeeded), String(w.failed),
        w.loadavg ? w.loadavg.map((v) => v.toFixed(2)).join(" ") : "–"];
    });
    fillTable("recent", events.recent.slice(0, 12), "no task finished yet", (r) => [
      clock(r.finished_at), (r.uuid || "").slice(0, 12), r.hostname || "–",
      { text: r.state, cls: `state-${r.state}` }, secs(r.latency_s), secs(r.runtime_s)]);
  }

  // ---- polling -----------------------------------------------------------------------
  async function poll() {
    try {
      const response = await fetch(api, { cache: "no-store" });
      if (!response.ok) throw new Error(`${api} answered ${response.status}`);
      const data = await response.json();
      const now = data.generated_at;
      remember(now, data.fleet, data.events);
      renderFleet(data.fleet);
      renderEvents(now, data.events, data.monitor);
      drawCharts(now, data.events);
      $("status").textContent = `updated ${clock(now)} · listener ${data.monitor.state}`;
      $("status").className = "";
      root.dataset.updates = String(Number(root.dataset.updates || 0) + 1);
    } catch (err) {
      $("status").textContent = `cannot refresh: ${err.message}; retrying`;
      $("status").className = "error";
    } finally {
      setTimeout(poll, pollMs);
    }
  }

  poll();
})();
