// The console's own script: the overview chart (uPlot), fed by /console/api/overview.json. Everything else that
// moves on the pages is htmx. No inline script anywhere: the Content-Security-Policy allows only these files.
(function () {
  "use strict";

  function sendsChart(el) {
    var source = el.dataset.source;
    var every = Number(el.dataset.refresh || 10) * 1000;
    var height = 220;
    var plot = null;

    function options() {
      return {
        width: el.clientWidth, height: height, legend: { show: false },
        scales: {
          // Half a minute of room at each end, so the first and the current minute's bars are drawn whole.
          x: { time: true, range: function (u, min, max) { return [min - 30, max + 30]; } },
          y: { range: function (u, min, max) { return [0, Math.max(5, (max || 0) * 1.15)]; } }
        },
        series: [
          {},
          { label: "sent", stroke: "#2563eb", fill: "rgba(37, 99, 235, 0.35)", width: 1,
            paths: uPlot.paths.bars({ size: [0.85, 24] }), points: { show: false } }
        ],
        axes: [{ stroke: "#475569" }, { stroke: "#475569", label: "messages / minute", size: 60 }]
      };
    }

    function load() {
      fetch(source, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (resp) {
          if (resp.status === 401) { window.location.assign("/console/login"); return null; }
          return resp.ok ? resp.json() : null;
        })
        .then(function (data) {
          if (!data) { return; }
          var xs = data.minutes.map(function (m) { return m[0]; });
          var counts = data.minutes.map(function (m) { return m[1]; });
          var ys = counts.map(function (n) { return n > 0 ? n : null; });  // no bar at all for an idle minute
          if (plot === null) {
            plot = new uPlot(options(), [xs, ys], el);
            if (window.ResizeObserver) {
              new ResizeObserver(function () { plot.setSize({ width: el.clientWidth, height: height }); }).observe(el);
            }
          } else {
            plot.setData([xs, ys]);
          }
          el.dataset.total = String(counts.reduce(function (a, b) { return a + b; }, 0));
          el.dataset.loaded = "yes";
        })
        .catch(function () { /* the next refresh tries again */ });
    }

    load();
    window.setInterval(load, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var chart = document.getElementById("sends-chart");
    if (chart && window.uPlot) { sendsChart(chart); }
  });
})();
