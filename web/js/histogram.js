// Activation histogram drawn as SVG bars, with the zero line and axis labels.
//   histogramSvg({counts: [3, 10, 2], edges: [-1, 0, 1, 2]}, {log: true, markers: [{x: 1.5, label: "p99"}], min: -3, max: 9})
// With the distribution's true min / max given, an end bin that also holds values past the
// axis (the histogram's range was fixed before the data was seen) is drawn hatched and labelled
// "≥ 2 (max 9)": the axis never silently hides a tail.

import { fmt } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

/**
 * counts: bin counts; edges: counts.length + 1 bin edges (or give lo/hi for equal bins).
 * log: log-scaled counts, the useful view for sparse activations (most mass near 0).
 */
export function histogramSvg({ counts, edges, lo, hi }, { width = 560, height = 180, log = true, markers = [], min = null, max = null } = {}) {
  const n = counts.length;
  if (!edges) {
    edges = Array.from({ length: n + 1 }, (_, i) => lo + ((hi - lo) * i) / n);
  }
  const shown = markers.filter((m) => Number.isFinite(m.x));
  // Marker labels sit above the plot, on two alternating rows so close quantiles stay legible.
  const x0e = edges[0];
  const x1e = edges[edges.length - 1];
  const over = Number.isFinite(max) && max > x1e;
  const under = Number.isFinite(min) && min < x0e;
  const pad = { l: 44, r: 10, t: shown.length ? 34 : 10, b: (over || under) ? 40 : 26 };
  const w = width - pad.l - pad.r;
  const hgt = height - pad.t - pad.b;
  const x0 = edges[0];
  const x1 = edges[edges.length - 1];
  const sx = (x) => pad.l + ((x - x0) / (x1 - x0 || 1)) * w;
  const tr = (c) => (log ? Math.log10(1 + c) : c);
  const top = Math.max(1e-9, ...counts.map(tr));
  const sy = (c) => pad.t + hgt - (tr(c) / top) * hgt;
  const svg = s("svg", {
    class: "histogram", viewBox: `0 0 ${width} ${height}`, width: "100%",
    role: "img", "aria-label": `Activation histogram, ${n} bins`,
  });
  svg.append(s("rect", { x: pad.l, y: pad.t, width: w, height: hgt, class: "plot-bg" }));
  for (let i = 0; i < n; i++) {
    if (!counts[i]) continue;
    const xa = sx(edges[i]);
    const xb = sx(edges[i + 1]);
    const y = sy(counts[i]);
    const mid = (edges[i] + edges[i + 1]) / 2;
    const tail = (over && i === n - 1) ? "overflow" : (under && i === 0) ? "underflow" : "";
    const bar = s("rect", {
      x: xa, y, width: Math.max(1, xb - xa - 0.5), height: pad.t + hgt - y,
      class: "bar " + (mid < 0 ? "neg" : "pos") + (tail ? ` ${tail}` : ""),
    });
    const range = tail === "overflow" ? `[${fmt(edges[i])}, ${fmt(max, 4)}] (overflow: every value ≥ ${fmt(edges[i])}, up to the max)`
      : tail === "underflow" ? `[${fmt(min, 4)}, ${fmt(edges[i + 1])}) (underflow: every value < ${fmt(edges[i + 1])}, down to the min)`
        : `[${fmt(edges[i])}, ${fmt(edges[i + 1])})`;
    bar.append(s("title", {}, `${range}: ${counts[i].toLocaleString("en-US")}`));
    svg.append(bar);
  }
  if (x0 < 0 && x1 > 0) svg.append(s("line", { x1: sx(0), x2: sx(0), y1: pad.t, y2: pad.t + hgt, class: "zero" }));
  // Markers (e.g. quantiles): dashed lines labelled at the top, inside the plotted range only.
  // Labels go on the first of three rows with room; a marker with no room keeps its line and
  // its tooltip (the statistics list every quantile by name).
  const rowEnd = [-Infinity, -Infinity, -Infinity];
  shown.filter((m) => m.x >= x0 && m.x <= x1).sort((a, b) => a.x - b.x).forEach((m) => {
    const x = sx(m.x);
    const half = 3.2 * m.label.length;
    const row = rowEnd.findIndex((end) => end < x - half - 2);
    const ty = 10 + 10 * Math.max(0, row);
    const line = s("line", { x1: x, x2: x, y1: row >= 0 ? ty + 2 : pad.t, y2: pad.t + hgt, class: "marker", "data-label": m.label });
    line.append(s("title", {}, `${m.label}: ${fmt(m.x, 4)}`));
    svg.append(line);
    if (row >= 0) {
      rowEnd[row] = x + half;
      svg.append(s("text", { x, y: ty, class: "marker-label", "text-anchor": "middle" }, m.label));
    }
  });
  // Tails past the axis: an arrow and the true extreme under the axis' end.
  if (over) {
    svg.append(s("text", { x: pad.l + w, y: height - 4, class: "tail-label overflow", "text-anchor": "end" },
      `last bin: ≥ ${fmt(edges[n - 1], 3)} (max ${fmt(max, 4)}) ▶`));
  }
  if (under) {
    svg.append(s("text", { x: pad.l, y: height - 4, class: "tail-label underflow", "text-anchor": "start" },
      `◀ first bin: < ${fmt(edges[1], 3)} (min ${fmt(min, 4)})`));
  }
  // x ticks: ends, zero and midpoints
  const ticks = new Set([x0, x1, (x0 + x1) / 2]);
  if (x0 < 0 && x1 > 0) ticks.add(0);
  for (const t of ticks) {
    svg.append(s("text", { x: sx(t), y: pad.t + hgt + 16, class: "tick", "text-anchor": "middle" }, fmt(t, 2)));
  }
  const maxC = Math.max(...counts);
  svg.append(s("text", { x: pad.l - 4, y: pad.t + 10, class: "tick", "text-anchor": "end" }, maxC.toLocaleString("en-US")));
  svg.append(s("text", { x: pad.l - 4, y: pad.t + hgt, class: "tick", "text-anchor": "end" }, "0"));
  svg.append(s("text", { x: 10, y: pad.t + hgt / 2, class: "axis", transform: `rotate(-90 10 ${pad.t + hgt / 2})`, "text-anchor": "middle" }, log ? "count (log)" : "count"));
  return svg;
}
