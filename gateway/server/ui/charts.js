/* Hand-written SVG charts for the console: no library, no network, no HTML parsing.
   Every mark carries its number in data-* attributes (and a <title> for a tooltip), so
   the page can be checked against the API it drew from. */
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function titled(node, text) {
    node.appendChild(el("title", {}, text));
    return node;
  }

  function reset(svg, height) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const width = Math.max(320, Math.round(svg.getBoundingClientRect().width) || 600);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.style.height = height + "px";
    return width;
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const step = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value) return m * step;
    return 10 * step;
  }

  function empty(svg, width, height, text) {
    svg.appendChild(el("text", { x: width / 2, y: height / 2, "text-anchor": "middle",
      class: "grid-label" }, text));
  }

  /* Vertical bars over time: points [{t, label, value, bad}]; `bad` is drawn over the
     bottom of each bar (errors and refusals among the requests). */
  function bars(svg, points, opts) {
    const height = (opts && opts.height) || 220;
    const width = reset(svg, height);
    const left = 40, bottom = 22, top = 8, right = 8;
    const plotW = width - left - right, plotH = height - top - bottom;
    const max = niceMax(Math.max(0, ...points.map((p) => p.value)));
    for (let i = 0; i <= 4; i++) {
      const y = top + plotH - (plotH * i) / 4;
      svg.appendChild(el("line", { x1: left, x2: width - right, y1: y, y2: y, class: "axis" }));
      const v = (max * i) / 4;
      svg.appendChild(el("text", { x: left - 4, y: y + 4, "text-anchor": "end",
        class: "grid-label" }, String(Number(v.toFixed(2)))));
    }
    const step = plotW / Math.max(points.length, 1);
    const barW = Math.max(1, step * 0.8);
    points.forEach((p, i) => {
      const x = left + i * step + (step - barW) / 2;
      const h = (plotH * p.value) / max;
      const bar = el("rect", { x: x, y: top + plotH - h, width: barW, height: h,
        class: "bar-ok", "data-t": p.t, "data-value": p.value, "data-bad": p.bad || 0 });
      svg.appendChild(titled(bar, `${p.label}: ${p.value} requests, ${p.bad || 0} errors or refused`));
      if (p.bad) {
        const hb = (plotH * p.bad) / max;
        svg.appendChild(el("rect", { x: x, y: top + plotH - hb, width: barW, height: hb,
          class: "bar-bad", "data-t": p.t, "data-value": p.bad }));
      }
      if (opts && opts.tick && (i - (opts.offset || 0)) % opts.tick === 0) {
        svg.appendChild(el("text", { x: x + barW / 2, y: height - 6, "text-anchor": "middle",
          class: "grid-label" }, p.label));
      }
    });
  }

  /* Horizontal bars: items [{label, value, share, text}], one row each. */
  function hbars(svg, items, opts) {
    const row = 26;
    const height = Math.max(80, items.length * row + 16);
    const width = reset(svg, height);
    if (!items.length) return empty(svg, width, height, (opts && opts.empty) || "No data yet");
    const labelW = 150, textW = 110;
    const plotW = width - labelW - textW;
    items.forEach((item, i) => {
      const y = 8 + i * row;
      svg.appendChild(el("text", { x: labelW - 8, y: y + 15, "text-anchor": "end" }, item.label));
      const w = Math.max(1, plotW * item.share);
      const bar = el("rect", { x: labelW, y: y + 2, width: w, height: row - 8, class: "bar-ok",
        "data-label": item.label, "data-value": item.value, "data-share": item.share });
      svg.appendChild(titled(bar, `${item.label}: ${item.text}`));
      svg.appendChild(el("text", { x: labelW + w + 6, y: y + 15 }, item.text));
    });
  }

  /* Horizontal stacked bars: items [{label, total, part, text}]; `part` (losers) is drawn
     in the waste colour at the end of the bar. */
  function stacked(svg, items, opts) {
    const row = 26;
    const height = Math.max(80, items.length * row + 16);
    const width = reset(svg, height);
    if (!items.length) return empty(svg, width, height, (opts && opts.empty) || "No data yet");
    const labelW = 150, textW = 170;
    const plotW = width - labelW - textW;
    const max = Math.max(...items.map((i) => i.total)) || 1;
    items.forEach((item, i) => {
      const y = 8 + i * row;
      svg.appendChild(el("text", { x: labelW - 8, y: y + 15, "text-anchor": "end" }, item.label));
      const w = (plotW * item.total) / max;
      const lw = (plotW * item.part) / max;
      const bar = el("rect", { x: labelW, y: y + 2, width: Math.max(0, w - lw), height: row - 8,
        class: "bar-ok", "data-label": item.label, "data-total": item.total,
        "data-part": item.part });
      svg.appendChild(titled(bar, `${item.label}: ${item.text}`));
      if (lw > 0) {
        svg.appendChild(titled(el("rect", { x: labelW + w - lw, y: y + 2, width: lw,
          height: row - 8, class: "bar-waste" }), `${item.label}: losers ${item.part}`));
      }
      svg.appendChild(el("text", { x: labelW + w + 6, y: y + 15 }, item.text));
    });
  }

  window.Charts = { bars, hbars, stacked };
})();
