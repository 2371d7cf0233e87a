/* The console's only script: copy buttons, charts (uPlot), live instance data over
   server-sent events. Loaded as a file (the Content-Security-Policy allows no inline
   script); data comes from <script type="application/json"> blocks and data-* attributes. */
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }

  function readJSON(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function copyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var src = document.getElementById(btn.getAttribute("data-copy"));
        if (!src) return;
        var text = src.textContent.trim();
        var done = function () { var old = btn.textContent; btn.textContent = "Copied"; setTimeout(function () { btn.textContent = old; }, 1500); };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(text).then(done, function () { selectText(src); });
        } else { selectText(src); }
      });
    });
  }

  function selectText(el) {
    var range = document.createRange(); range.selectNodeContents(el);
    var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
  }

  function width(el) { return Math.max(280, el.clientWidth || 600); }

  function categoryChart(el, labels, series, opts) {
    if (!window.uPlot || !labels.length) return;
    var xs = labels.map(function (_, i) { return i; });
    var bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.6, 60] }) : undefined;
    var data = [xs].concat(series.map(function (s) { return s.values; }));
    var plot = new uPlot({
      width: width(el), height: 240,
      scales: { x: { time: false, range: [-0.5, labels.length - 0.5] } },
      axes: [{ values: function (_, ticks) { return ticks.map(function (t) { return labels[t] !== undefined && Number.isInteger(t) ? labels[t] : ""; }); } }, { label: opts.unit || "", size: 70 }],
      series: [{}].concat(series.map(function (s, i) {
        return { label: s.label, stroke: s.color, fill: s.fill, width: 2, paths: s.line ? undefined : bars, points: { show: !!s.line } };
      }))
    }, data, el);
    window.addEventListener("resize", function () { plot.setSize({ width: width(el), height: 240 }); });
  }

  function staticCharts() {
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var d = readJSON(el.getAttribute("data-source"));
      if (!d) return;
      if (el.getAttribute("data-chart") === "bars") {
        categoryChart(el, d.labels, [
          { label: "used", values: d.used, color: "#1d6fb8", fill: "rgba(29,111,184,.35)" },
          { label: "quota", values: d.limit.map(function (v) { return v === null ? null : v; }), color: "#b3261e", line: true }
        ], { unit: "" });
      } else if (el.getAttribute("data-chart") === "prices") {
        categoryChart(el, d.labels, [{ label: "USD per GPU-hour", values: d.price, color: "#2a7d4f", fill: "rgba(42,125,79,.35)" }], { unit: "USD" });
      }
    });
  }

  var COLORS = ["#1d6fb8", "#b3261e", "#2a7d4f", "#8a5a00", "#6b3fa0", "#00707a", "#9c2f6f", "#4d4d4d"];

  function liveInstance() {
    var root = document.getElementById("live");
    if (!root || !window.EventSource) return;
    var state = document.getElementById("live-state");
    var charts = {};
    var series = {}; // metric -> {t: [], gpus: {uuid: []}}
    var order = [];
    root.querySelectorAll("[data-metric]").forEach(function (el) {
      var m = el.getAttribute("data-metric");
      charts[m] = { el: el, plot: null };
      series[m] = { t: [], gpus: {} };
    });

    function draw(metric) {
      var c = charts[metric], s = series[metric];
      var data = [s.t].concat(order.map(function (u) { return s.gpus[u]; }));
      if (!c.plot || c.plot.series.length !== order.length + 1) {
        if (c.plot) c.plot.destroy();
        c.plot = new uPlot({
          width: width(c.el), height: 200,
          series: [{}].concat(order.map(function (u, i) { return { label: "GPU " + i, stroke: COLORS[i % COLORS.length], width: 2 }; })),
          axes: [{}, { size: 60 }]
        }, data, c.el);
      } else {
        c.plot.setData(data);
      }
    }

    function onSample(sample) {
      var t = Date.parse(sample.at) / 1000;
      sample.gpus.forEach(function (g) { if (order.indexOf(g.uuid) < 0) order.push(g.uuid); });
      Object.keys(series).forEach(function (metric) {
        var s = series[metric];
        s.t.push(t);
        order.forEach(function (u) {
          if (!s.gpus[u]) s.gpus[u] = s.t.slice(0, -1).map(function () { return null; });
          var g = sample.gpus.filter(function (x) { return x.uuid === u; })[0];
          s.gpus[u].push(g ? g[metric] : null);
        });
        if (s.t.length > 600) { s.t.shift(); order.forEach(function (u) { s.gpus[u].shift(); }); }
        if (window.uPlot) draw(metric);
      });
      var empty = document.getElementById("telemetry-empty"); if (empty) empty.remove();
      root.setAttribute("data-samples", String(series[Object.keys(series)[0]].t.length));
      if (state) state.textContent = "Live: last sample " + new Date(t * 1000).toLocaleTimeString();
    }

    function setText(id, v) { var el = document.getElementById(id); if (el && v !== undefined && v !== null) el.textContent = v; }

    if (root.getAttribute("data-ended") !== "true") {
      var es = new EventSource(root.getAttribute("data-live"));
      es.addEventListener("sample", function (e) { onSample(JSON.parse(e.data)); });
      es.addEventListener("job", function (e) {
        var j = JSON.parse(e.data);
        var st = document.getElementById("job-status");
        if (st) { st.textContent = j.status; st.className = "badge " + j.status; }
        setText("job-cost", j.cost); setText("job-minutes", j.gpu_minutes); setText("job-step", j.step); setText("job-provider", j.provider_id); setText("job-started", j.started_at);
      });
      es.addEventListener("end", function (e) {
        var j = JSON.parse(e.data);
        if (state) state.textContent = "The job has ended (" + j.status + ").";
        root.setAttribute("data-ended", "true");
        es.close();
      });
      es.addEventListener("problem", function (e) { var p = JSON.parse(e.data); if (state) state.textContent = (p.title || "Problem") + ": " + (p.detail || "") + " Retrying…"; });
    }

    var logs = document.getElementById("logs");
    if (logs && root.getAttribute("data-logs")) {
      var shown = logs.textContent.split("\n").filter(Boolean).length;
      var received = 0;
      var ls = new EventSource(root.getAttribute("data-logs"));
      ls.addEventListener("log", function (e) {
        received += 1;
        if (received <= shown) return; // already rendered with the page
        var line = JSON.parse(e.data);
        var empty = document.getElementById("logs-empty"); if (empty) empty.remove();
        var atBottom = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 8;
        logs.appendChild(document.createTextNode((line.line || "") + "\n"));
        if (atBottom) logs.scrollTop = logs.scrollHeight;
      });
      ls.addEventListener("end", function () { ls.close(); });
    }
  }

  function generationLive() {
    var el = document.getElementById("gen");
    if (!el || !el.getAttribute("data-events") || !window.EventSource) return;
    var es = new EventSource(el.getAttribute("data-events"));
    es.addEventListener("progress", function (e) {
      var g = JSON.parse(e.data);
      var st = document.getElementById("gen-status");
      if (st) { st.textContent = g.status; st.className = "badge " + g.status; }
      var sg = document.getElementById("gen-stage"); if (sg) sg.textContent = g.stage;
      var pr = document.getElementById("gen-progress"); if (pr && g.progress !== null) { pr.value = g.progress; pr.textContent = g.progress + " %"; }
    });
    es.addEventListener("end", function () { es.close(); window.location.reload(); });
    es.addEventListener("problem", function () { var l = document.getElementById("gen-live"); if (l) l.textContent = "Live progress interrupted; retrying…"; });
  }

  function mobileNav() {
    var d = document.querySelector(".navtoggle");
    if (d && window.matchMedia && window.matchMedia("(max-width: 48rem)").matches) d.removeAttribute("open");
  }

  ready(function () {
    mobileNav();
    copyButtons();
    staticCharts();
    liveInstance();
    generationLive();
  });
})();
