// Inline-SVG line charts for the dashboard: no library, no CDN. Each chart is a time axis (the points' `t`,
// epoch seconds) and one or more series; `step: true` draws a staircase (weights change in steps, not slopes).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

function clockTime(t) {
  const d = new Date(t * 1000);
  return d.toISOString().substring(11, 19);
}

// series: [{name, cls, points: [[t, v|null], ...]}]; options: {title, yMax, yMin, format, step, t0, t1}
function lineChart(series, options) {
  const width = 520, height = 180, left = 56, right = 12, top = 26, bottom = 26;
  const svg = svgEl("svg", {
    viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": options.title,
  });
  svg.appendChild(svgEl("text", { x: left, y: 16, class: "chart-title" }, options.title));
  const all = series.flatMap((s) => s.points.filter((p) => p[1] !== null && p[1] !== undefined));
  if (all.length === 0) {
    svg.appendChild(svgEl("text", { x: width / 2, y: height / 2, class: "chart-empty", "text-anchor": "middle" },
      "no data yet"));
    return svg;
  }
  const ts = all.map((p) => p[0]);
  let t0 = options.t0 !== undefined ? options.t0 : Math.min(...ts);
  let t1 = options.t1 !== undefined ? options.t1 : Math.max(...ts);
  if (t1 - t0 < 1) { t0 -= 30; t1 += 30; }
  const values = all.map((p) => p[1]);
  const yMin = options.yMin !== undefined ? options.yMin : Math.min(0, ...values);
  let yMax = options.yMax !== undefined ? options.yMax : Math.max(...values);
  if (yMax <= yMin) yMax = yMin + (options.flatSpan || 1); // all values equal (e.g. no errors yet)
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
  const y = (v) => top + (1 - (v - yMin) / (yMax - yMin)) * (height - top - bottom);
  const fmt = options.format || ((v) => String(v));

  for (const v of [yMin, (yMin + yMax) / 2, yMax]) {
    svg.appendChild(svgEl("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }));
    svg.appendChild(svgEl("text", { x: left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, fmt(v)));
  }
  svg.appendChild(svgEl("text", { x: left, y: height - 6, class: "axis" }, clockTime(t0)));
  svg.appendChild(svgEl("text", { x: width - right, y: height - 6, class: "axis", "text-anchor": "end" },
    clockTime(t1)));

  series.forEach((s) => {
    const pts = s.points.filter((p) => p[1] !== null && p[1] !== undefined);
    if (pts.length === 0) return;
    let d = "";
    pts.forEach((p, i) => {
      if (i === 0) d += `M${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`;
      else if (options.step) d += `H${x(p[0]).toFixed(1)}V${y(p[1]).toFixed(1)}`;
      else d += `L${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`;
    });
    if (options.step) d += `H${(width - right).toFixed(1)}`;
    svg.appendChild(svgEl("path", { d, class: `series ${s.cls}` }));
    const last = pts[pts.length - 1];
    svg.appendChild(svgEl("circle", { cx: x(last[0]), cy: y(last[1]), r: 3, class: `dot ${s.cls}` }));
  });

  let lx = width - right;
  [...series].reverse().forEach((s) => {
    const label = svgEl("text", { x: lx, y: 16, class: `legend ${s.cls}`, "text-anchor": "end" }, `■ ${s.name}`);
    svg.appendChild(label);
    lx -= 12 + 7 * (s.name.length + 2);
  });
  return svg;
}

window.CoalmineCharts = { lineChart };
