// Dashboard charts (Chart.js, vendored in console/vendor/). Every bar and point opens the list it counts.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("dashboard-data").textContent);
  const COLOURS = ["#235c9e", "#b26a00", "#1e7a3c", "#b3261e", "#6b4fa0", "#00838f", "#8d6e63", "#5b6b7b"];
  const charts = {};
  window.dashboardCharts = charts; // for the browser tests

  function linkTo(url) { if (url) window.location.assign(url); }

  // onClick handler: `pick(datasetIndex, index)` returns the URL for the element clicked.
  function draw(id, config, pick) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    config.options = Object.assign({
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "nearest", intersect: true },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      onClick(event, elements) {
        if (elements.length) linkTo(pick(elements[0].datasetIndex, elements[0].index));
      },
      onHover(event, elements) { event.native.target.style.cursor = elements.length ? "pointer" : "default"; },
    }, config.options || {});
    charts[id] = new Chart(canvas, config);
    canvas.dataset.ready = "true";
  }

  const minutesAxis = { beginAtZero: true, title: { display: true, text: "minutes" } };
  const pctAxis = { beginAtZero: true, max: 100, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "%" } };

  const ld = data.latencyDay;
  draw("chart-latency-day", {
    type: "line",
    data: { labels: ld.labels, datasets: [
      { label: "Median", data: ld.median, borderColor: COLOURS[0], backgroundColor: COLOURS[0], spanGaps: true },
      { label: "P95", data: ld.p95, borderColor: COLOURS[1], backgroundColor: COLOURS[1], spanGaps: true },
      { label: "Within SLA %", data: ld.slaPct, borderColor: COLOURS[2], backgroundColor: COLOURS[2], borderDash: [4, 4], yAxisID: "pct", spanGaps: true },
    ] },
    options: { scales: { y: minutesAxis, pct: pctAxis } },
  }, (d, i) => ld.links[i]);

  const lr = data.latencyRule;
  draw("chart-latency-rule", {
    type: "bar",
    data: { labels: lr.labels, datasets: [
      { label: "Median", data: lr.median, backgroundColor: COLOURS[0] },
      { label: "P95", data: lr.p95, backgroundColor: COLOURS[1] },
      { type: "line", label: "SLA", data: lr.sla, borderColor: COLOURS[3], backgroundColor: COLOURS[3], showLine: false, pointStyle: "line", pointRadius: 18, pointBorderWidth: 3 },
    ] },
    options: { scales: { y: minutesAxis } },
  }, (d, i) => lr.links[i]);

  const lo = data.latencyOrigin;
  draw("chart-latency-origin", {
    type: "bar",
    data: { labels: lo.labels, datasets: [
      { label: "Median", data: lo.median, backgroundColor: COLOURS[0] },
      { label: "P95", data: lo.p95, backgroundColor: COLOURS[1] },
    ] },
    options: { scales: { y: minutesAxis } },
  }, (d, i) => lo.links[i]);

  const ex = data.exceptionsDay;
  draw("chart-exceptions-day", {
    type: "bar",
    data: { labels: ex.labels, datasets: [
      { label: "Exception items", data: ex.items, backgroundColor: COLOURS[3] },
      { type: "line", label: "Rate %", data: ex.rate, borderColor: COLOURS[0], backgroundColor: COLOURS[0], yAxisID: "pct", spanGaps: true },
    ] },
    options: { scales: { y: { beginAtZero: true }, pct: Object.assign({}, pctAxis, { max: undefined }) } },
  }, (d, i) => ex.links[i]);

  const bl = data.backlog;
  draw("chart-backlog", {
    type: "line",
    data: { labels: bl.labels, datasets: bl.queues.map((q, n) => ({
      label: q.name, data: q.values, borderColor: COLOURS[n % COLOURS.length], backgroundColor: COLOURS[n % COLOURS.length], spanGaps: true,
    })) },
    options: { scales: { y: { beginAtZero: true, title: { display: true, text: "unresolved items" } } } },
  }, (d) => bl.queues[d].link);

  const od = data.oldest;
  draw("chart-oldest", {
    type: "bar",
    data: { labels: od.labels, datasets: [{ label: "Age of the oldest open item (hours)", data: od.hours, backgroundColor: COLOURS[1] }] },
    options: { indexAxis: "y", scales: { x: { beginAtZero: true } } },
  }, (d, i) => od.links[i]);

  const sq = data.slaQueue;
  draw("chart-sla-queue", {
    type: "bar",
    data: { labels: sq.labels, datasets: [
      { label: "Acknowledged within SLA %", data: sq.ack, backgroundColor: COLOURS[0], yAxisID: "pct" },
      { label: "Resolved within SLA %", data: sq.resolve, backgroundColor: COLOURS[2], yAxisID: "pct" },
      { type: "line", label: "Breached items", data: sq.breached, borderColor: COLOURS[3], backgroundColor: COLOURS[3], showLine: false, pointRadius: 5 },
    ] },
    options: { scales: { y: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "breaches" } },
                         pct: Object.assign({}, pctAxis, { position: "left", grid: {} }) } },
  }, (d, i) => sq.links[i]);

  const td = data.touchesDay;
  draw("chart-touches", {
    type: "line",
    data: { labels: td.labels, datasets: [{ label: "Human actions per lead", data: td.perLead, borderColor: COLOURS[4], backgroundColor: COLOURS[4], spanGaps: true }] },
    options: { scales: { y: { beginAtZero: true } } },
  }, (d, i) => td.links[i]);

  const ov = data.overrides;
  draw("chart-overrides", {
    type: "bar",
    data: { labels: ov.labels.map((w) => "week of " + w), datasets: ov.rules.map((r, n) => ({
      label: r.name, data: r.counts, backgroundColor: COLOURS[n % COLOURS.length],
    })) },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
  }, (d) => ov.rules[d].link);

  const dl = data.delivery;
  draw("chart-delivery", {
    type: "bar",
    data: { labels: dl.labels, datasets: [
      { label: "Dead-lettered", data: dl.dead, backgroundColor: COLOURS[3] },
      { label: "Replayed", data: dl.replayed, backgroundColor: COLOURS[0] },
      { label: "Replays delivered", data: dl.delivered, backgroundColor: COLOURS[2] },
    ] },
    options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  }, () => dl.link);

  const en = data.enrichDay;
  draw("chart-enrichment", {
    type: "line",
    data: { labels: en.labels, datasets: [{ label: "Enriched %", data: en.pct, borderColor: COLOURS[5], backgroundColor: COLOURS[5], spanGaps: true }] },
    options: { scales: { y: pctAxis } },
  }, (d, i) => en.links[i]);

  // The range links keep the page's other parameters out: a preset replaces a custom range.
  document.body.dataset.chartsReady = String(Object.keys(charts).length);
})();
