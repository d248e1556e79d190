// Draws one line chart per metric of a job and keeps them current as htmx swaps in fresh numbers.
// The numbers come from a data attribute in the live partial (no inline script: the CSP forbids it).
(function () {
  "use strict";
  const charts = new Map();

  function metrics() {
    const node = document.getElementById("job-metrics");
    return node ? JSON.parse(node.dataset.series) : {};
  }

  function draw() {
    if (typeof Chart === "undefined") return;
    const box = document.getElementById("charts");
    if (!box) return;
    const data = metrics();
    const names = Object.keys(data).sort();
    for (const name of names) {
      const points = data[name].map(([step, value]) => ({ x: step, y: value }));
      let chart = charts.get(name);
      if (!chart) {
        const figure = document.createElement("figure");
        figure.className = "chart";
        const caption = document.createElement("figcaption");
        caption.textContent = name;
        const canvas = document.createElement("canvas");
        canvas.setAttribute("aria-label", "chart of " + name);
        figure.append(caption, canvas);
        box.append(figure);
        chart = new Chart(canvas, {
          type: "line",
          data: { datasets: [{ label: name, data: points, borderColor: "#3b5bdb", backgroundColor: "#3b5bdb",
            pointRadius: points.length > 60 ? 0 : 2, borderWidth: 2, tension: 0.15 }] },
          options: {
            animation: false, maintainAspectRatio: false, parsing: false,
            plugins: { legend: { display: false } },
            scales: { x: { type: "linear", title: { display: true, text: "step" } } },
          },
        });
        charts.set(name, chart);
      } else {
        chart.data.datasets[0].data = points;
        chart.update("none");
      }
    }
  }

  function tailLog() {
    const log = document.getElementById("job-log");
    if (log) log.scrollTop = log.scrollHeight;  // the newest lines are what a watcher wants
  }

  function refresh() { draw(); tailLog(); }
  document.addEventListener("DOMContentLoaded", refresh);
  document.addEventListener("htmx:afterSettle", refresh);
})();
