// A live line chart on <canvas>: series of (time, value) points, redrawn on every push.

const COLORS = ['--c1', '--c2', '--c3', '--c4', '--c5'];

export class LineChart {
  // series: [{key, label}]; window: how many seconds of history to show.
  constructor(canvas, series, { window = 600, unit = '' } = {}) {
    this.canvas = canvas;
    this.series = series;
    this.window = window;
    this.unit = unit;
    this.points = series.map(() => []);
    // Colours come from the page's light or dark palette: redraw when it switches.
    this.scheme = matchMedia('(prefers-color-scheme: dark)');
    this.redraw = () => this.draw();
    this.scheme.addEventListener('change', this.redraw);
    this.draw();
  }

  dispose() { this.scheme.removeEventListener('change', this.redraw); }

  push(t, values) {
    this.series.forEach((s, i) => {
      const v = values[s.key];
      if (typeof v === 'number' && Number.isFinite(v)) this.points[i].push([t, v]);
      while (this.points[i].length && this.points[i][0][0] < t - this.window * 1000) this.points[i].shift();
    });
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || 400, hgt = c.clientHeight || 180;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(hgt * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(hgt * dpr);
    }
    const g = c.getContext('2d');
    const css = getComputedStyle(document.documentElement);
    const color = (n) => css.getPropertyValue(n).trim() || '#888';
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, hgt);
    const left = 48, right = 8, top = 8, bottom = 20;
    const pw = w - left - right, ph = hgt - top - bottom;
    const now = Date.now();
    // The x axis spans the history so far (at least a minute), up to the window.
    const first = Math.min(...this.points.filter((ps) => ps.length).map((ps) => ps[0][0]), now);
    const span = Math.min(this.window * 1000, Math.max(60000, now - first));
    const t0 = now - span;
    let max = 0;
    for (const ps of this.points) for (const [, v] of ps) max = Math.max(max, v);
    max = niceMax(max);
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = color('--muted');
    g.strokeStyle = color('--line');
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = top + ph - (ph * i) / 4;
      g.beginPath(); g.moveTo(left, y + 0.5); g.lineTo(left + pw, y + 0.5); g.stroke();
      const label = fmt((max * i) / 4) + this.unit;
      g.fillText(label, left - 6 - g.measureText(label).width, y + 4);
    }
    const ago = span >= 120000 ? `${Math.round(span / 60000)} min ago` : `${Math.round(span / 1000)} s ago`;
    g.fillText(ago, left, hgt - 4);
    const nowLabel = 'now';
    g.fillText(nowLabel, left + pw - g.measureText(nowLabel).width, hgt - 4);
    this.points.forEach((ps, i) => {
      if (!ps.length) return;
      g.strokeStyle = color(COLORS[i % COLORS.length]);
      g.lineWidth = 1.8;
      g.beginPath();
      const xy = ps.map(([t, v]) => [left + (pw * (t - t0)) / span, top + ph - (ph * v) / max]);
      xy.forEach(([x, y], j) => { if (j === 0) g.moveTo(x, y); else g.lineTo(x, y); });
      g.stroke();
      g.fillStyle = g.strokeStyle;
      for (const [x, y] of xy) { g.beginPath(); g.arc(x, y, 2.2, 0, 2 * Math.PI); g.fill(); }
    });
  }
}

// niceMax is the top of an axis of four equal, round steps that holds v.
function niceMax(v) {
  if (v <= 0) return 4;
  const step = v / 4;
  const p = 10 ** Math.floor(Math.log10(step));
  for (const m of [1, 2, 2.5, 5, 10]) if (step <= m * p) return 4 * m * p;
  return 40 * p;
}

function fmt(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (v >= 1e3) return (v / 1e3).toFixed(1) + 'k';
  if (Number.isInteger(v)) return String(v);
  return v < 1 ? v.toFixed(2) : v.toFixed(1);
}
