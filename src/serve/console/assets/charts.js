// Two small SVG charts drawn by hand (no library): stacked bars per day, and lines per day.
// Every bar and point carries its figures as data attributes, so what is drawn can be read back.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 900;
const HEIGHT = 220;
const PAD = { left: 48, right: 12, top: 10, bottom: 28 };

function node(tag, attributes = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

/** 1, 2 or 5 times a power of ten, at least `value`: gridlines at round numbers. */
function niceMax(value) {
  const power = 10 ** Math.floor(Math.log10(Math.max(value, 1)));
  return [1, 2, 5, 10].map((m) => m * power).find((candidate) => candidate >= value);
}

function frame(container, max, label) {
  const svg = node("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": label });
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  for (const fraction of [0, 0.5, 1]) {
    const y = PAD.top + plotHeight * (1 - fraction);
    svg.append(node("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: "grid" }));
    svg.append(node("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end", class: "axis" }, formatTick(max * fraction)));
  }
  container.replaceChildren(svg);
  return { svg, plotHeight };
}

function formatTick(value) {
  if (value >= 10000) return `${Math.round(value / 1000)}k`;
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function dayLabels(svg, days, step) {
  days.forEach((day, index) => {
    if (index % 5 === 0 || index === days.length - 1) {
      const x = PAD.left + step * (index + 0.5);
      svg.append(node("text", { x, y: HEIGHT - 8, "text-anchor": "middle", class: "axis" }, day.date.slice(5)));
    }
  });
}

/** Bars per day, one segment per series (`{key, label, className}`), stacked. */
export function stackedBars(container, days, series) {
  const totals = days.map((day) => series.reduce((sum, s) => sum + (day[s.key] || 0), 0));
  const max = niceMax(Math.max(1, ...totals));
  const { svg, plotHeight } = frame(container, max, "executions per day by status");
  const step = (WIDTH - PAD.left - PAD.right) / Math.max(1, days.length);
  days.forEach((day, index) => {
    const group = node("g", { class: "day", "data-date": day.date, "data-total": day.totalExecutions });
    let y = PAD.top + plotHeight;
    for (const s of series) {
      const value = day[s.key] || 0;
      group.setAttribute(`data-${s.key.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())}`, value);
      if (value === 0) continue;
      const height = (value / max) * plotHeight;
      y -= height;
      const bar = node("rect", { x: PAD.left + step * index + step * 0.15, y, width: step * 0.7, height, class: s.className });
      bar.append(node("title", {}, `${day.date}: ${value} ${s.label}`));
      group.append(bar);
    }
    svg.append(group);
  });
  dayLabels(svg, days, step);
}

/** A line per series (`{key, label, className}`); null values leave a gap. */
export function lines(container, days, series, unit) {
  const values = days.flatMap((day) => series.map((s) => day[s.key])).filter((v) => typeof v === "number");
  const max = niceMax(Math.max(1, ...values));
  const { svg, plotHeight } = frame(container, max, `duration per day (${unit})`);
  const step = (WIDTH - PAD.left - PAD.right) / Math.max(1, days.length);
  for (const s of series) {
    let path = "";
    days.forEach((day, index) => {
      const value = day[s.key];
      if (typeof value !== "number") {
        path += " ";
        return;
      }
      const x = PAD.left + step * (index + 0.5);
      const y = PAD.top + plotHeight * (1 - value / max);
      path += `${path.endsWith(" ") || path === "" ? "M" : "L"}${x.toFixed(1)},${y.toFixed(1)}`;
      const point = node("circle", { cx: x, cy: y, r: 3, class: s.className, "data-date": day.date, "data-value": value });
      point.append(node("title", {}, `${day.date}: ${s.label} ${value} ${unit}`));
      svg.append(point);
    });
    svg.prepend(node("path", { d: path.trim(), class: `${s.className} line`, fill: "none" }));
  }
  dayLabels(svg, days, step);
}
