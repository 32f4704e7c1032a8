// Charts: every element with data-chart="ID" is drawn with Plotly.react from the JSON figure in
// <script type="application/json" id="ID">, on page load and after each htmx swap has settled.
//
// Drawing only after the settle is the point: htmx's attribute settling briefly gives a swapped
// element the old element's attributes and then puts the new ones back. A chart drawn by an
// inline script during the swap loses Plotly's classes in that step: its styles go, and its
// absolutely positioned layers spread over the page and swallow clicks meant for the forms.
// Charts follow the page's colour scheme (CSS custom properties) and redraw when it changes;
// a chart leaving the page is purged, so no resize listener outlives it.
//
// plotly.js (data-plotly on this script's tag) is fetched only when a chart is on the page, and
// after htmx has wired up the page: a big script in the way would leave forms unenhanced (a
// click before it finished would post the plain form) and delay every page.
(function () {
  "use strict";
  const plotlySrc = document.currentScript && document.currentScript.dataset.plotly;
  let plotlyLoading = null;

  function withPlotly(then) {
    if (window.Plotly) return then();
    if (!plotlyLoading) {
      plotlyLoading = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = plotlySrc;
        script.onload = resolve;
        script.onerror = reject;
        document.head.appendChild(script);
      });
    }
    plotlyLoading.then(then);
  }

  function colours() {
    const css = getComputedStyle(document.documentElement);
    const value = (name) => css.getPropertyValue(name).trim();
    return { fg: value("--fg"), muted: value("--muted"), line: value("--line"),
             card: value("--card"), accent: value("--accent") };
  }

  function themed(layout, c) {
    const axis = (a) => Object.assign({ gridcolor: c.line, linecolor: c.line, zerolinecolor: c.line,
                                         tickfont: { color: c.muted } }, a || {});
    return Object.assign({}, layout, {
      paper_bgcolor: c.card, plot_bgcolor: c.card,
      font: Object.assign({ color: c.fg }, layout.font || {}),
      xaxis: axis(layout.xaxis), yaxis: axis(layout.yaxis),
      hoverlabel: { bgcolor: c.card, bordercolor: c.line, font: { color: c.fg } },
      legend: Object.assign({ font: { color: c.fg } }, layout.legend || {}),
    });
  }

  function draw(el, force) {
    const source = document.getElementById(el.dataset.chart);
    if (!source) return;
    const text = source.textContent;
    if (!force && el._chartSource === text) return;  // drawn from this figure already
    const figure = JSON.parse(text);
    const c = colours();
    const data = figure.data.map((trace) =>
      trace.type === "scatter" && !(trace.line && trace.line.color)
        ? Object.assign({}, trace, { line: Object.assign({ color: c.accent }, trace.line || {}) })
        : trace);
    el._chartSource = text;
    window.Plotly.react(el, data, themed(figure.layout, c), figure.config || {});
  }

  function drawAll(force) {
    const charts = document.querySelectorAll("[data-chart]");
    if (charts.length) withPlotly(() => charts.forEach((el) => draw(el, force)));
  }

  document.addEventListener("DOMContentLoaded", () => drawAll(false));
  document.addEventListener("htmx:afterSettle", () => drawAll(false));
  // Back/forward from htmx's history cache: the restored markup holds a dead copy of the chart.
  document.addEventListener("htmx:historyRestore", () => {
    document.querySelectorAll("[data-chart]").forEach((el) => {
      el.replaceChildren();
      el.className = el.className.replace(/\bjs-plotly-plot\b/g, "").trim();
      delete el._chartSource;
    });
    drawAll(true);
  });
  document.addEventListener("htmx:beforeCleanupElement", (event) => {
    const el = event.target;
    if (el.dataset && el.dataset.chart && window.Plotly && el._chartSource) window.Plotly.purge(el);
  });
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => drawAll(true));
})();
