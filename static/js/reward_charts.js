// Draws a reward model's evaluation plots: the reliability diagram and the chosen vs rejected score histograms.
// Each evaluation carries its numbers in a data attribute (no inline script: the CSP forbids it, and htmx drops
// <script> elements from swapped content).
(function () {
  "use strict";
  const ACCENT = "#3b5bdb", OK = "#2b8a3e", ERR = "#c92a2a", MUTED = "#98a2b3";
  const BINS = 20;

  function reliability(canvas, bins) {
    const points = bins.filter((b) => b.n > 0 && b.observed !== null)
      .map((b) => ({ x: b.mean_predicted, y: b.observed, n: b.n }));
    const biggest = Math.max(1, ...points.map((p) => p.n));
    return new Chart(canvas, {
      type: "scatter",
      data: { datasets: [
        { label: "perfect calibration", data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], showLine: true, pointRadius: 0,
          borderColor: MUTED, borderDash: [5, 4], borderWidth: 1 },
        { label: "this model", data: points, showLine: true, borderColor: ACCENT, backgroundColor: ACCENT,
          borderWidth: 2, pointRadius: points.map((p) => 2 + 4 * Math.sqrt(p.n / biggest)) },
      ] },
      options: {
        animation: false, maintainAspectRatio: false,
        plugins: {
          legend: { labels: { boxWidth: 12 } },
          tooltip: { callbacks: { label: (c) => c.datasetIndex === 1
            ? `predicted ${c.raw.x.toFixed(2)}, chosen ${c.raw.y.toFixed(2)} (${c.raw.n} pairs)` : "" } },
        },
        scales: {
          x: { min: 0, max: 1, title: { display: true, text: "predicted P(chosen)" } },
          y: { min: 0, max: 1, title: { display: true, text: "share chosen" } },
        },
      },
    });
  }

  function histogram(values, lo, width) {
    const counts = new Array(BINS).fill(0);
    for (const v of values) counts[Math.min(BINS - 1, Math.max(0, Math.floor((v - lo) / width)))] += 1;
    return counts;
  }

  function scores(canvas, data) {
    const chosen = data.chosen || [], rejected = data.rejected || [];
    const all = chosen.concat(rejected);
    if (!all.length) return null;
    let lo = Math.min(...all), hi = Math.max(...all);
    if (hi === lo) { lo -= 0.5; hi += 0.5; }
    const width = (hi - lo) / BINS;
    const labels = Array.from({ length: BINS }, (_, i) => (lo + (i + 0.5) * width).toFixed(2));
    return new Chart(canvas, {
      type: "bar",
      data: { labels, datasets: [
        // Overlaid (grouped: false), translucent: where the two distributions overlap is what the plot is for.
        { label: "chosen", data: histogram(chosen, lo, width), backgroundColor: OK + "99", grouped: false },
        { label: "rejected", data: histogram(rejected, lo, width), backgroundColor: ERR + "80", grouped: false },
      ] },
      options: {
        animation: false, maintainAspectRatio: false,
        plugins: { legend: { labels: { boxWidth: 12 } } },
        scales: {
          x: { title: { display: true, text: "score" }, ticks: { maxTicksLimit: 8 } },
          y: { title: { display: true, text: "answers" }, ticks: { precision: 0 } },
        },
        datasets: { bar: { categoryPercentage: 1.0, barPercentage: 1.0 } },
      },
    });
  }

  function draw() {
    if (typeof Chart === "undefined") return;
    for (const box of document.querySelectorAll("[data-reward-charts]")) {
      if (box.dataset.drawn) continue;
      box.dataset.drawn = "1";
      const data = JSON.parse(box.dataset.rewardCharts);
      const rel = box.querySelector('canvas[data-chart="reliability"]');
      const hist = box.querySelector('canvas[data-chart="scores"]');
      if (rel) reliability(rel, data.reliability || []);
      if (hist) scores(hist, data.scores || {});
    }
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
})();
