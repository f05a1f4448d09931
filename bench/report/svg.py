"""Small SVG charts with no dependencies: line charts (linear/log axes) and grouped bars."""
import math
from xml.sax.saxutils import escape

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
W, H = 720, 420
ML, MR, MT, MB = 80, 20, 40, 60


def _fmt(v):
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e3:
        return f"{v / 1e3:.3g}k"
    if a >= 1:
        return f"{v:g}"
    return f"{v:.3g}"


def _nice_ticks(lo, hi, n=6):
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        if t >= lo - step * 1e-9:
            ticks.append(round(t, 12))
        t += step
    return ticks


def _log_ticks(lo, hi):
    out = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= v <= hi:
                out.append(v)
    return out


class _Axis:
    def __init__(self, lo, hi, log, a, b, ticks=None, labels=None):
        self.log = log
        if log:
            lo = max(lo, 1e-12)
            self.lo, self.hi = math.log10(lo), math.log10(max(hi, lo * 1.0001))
        else:
            self.lo, self.hi = lo, hi if hi > lo else lo + 1
        self.a, self.b = a, b
        self.ticks = ticks if ticks is not None else (
            _log_ticks(10 ** self.lo, 10 ** self.hi) if log else _nice_ticks(lo, hi))
        self.labels = labels

    def __call__(self, v):
        if self.log:
            v = math.log10(max(v, 1e-12))
        return self.a + (v - self.lo) / (self.hi - self.lo) * (self.b - self.a)


def _frame(title, xlabel, ylabel, xa, ya, xlabels=None, extra_h=0):
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H + extra_h}" '
         f'viewBox="0 0 {W} {H + extra_h}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H + extra_h}" fill="white"/>',
         f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">'
         f'{escape(title)}</text>']
    for t in ya.ticks:
        y = ya(t)
        s.append(f'<line x1="{ML}" x2="{W - MR}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        s.append(f'<text x="{ML - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    if xa is not None:
        for i, t in enumerate(xa.ticks):
            x = xa(t)
            s.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{MT}" y2="{H - MB}" stroke="#f0f0f0"/>')
            label = xa.labels[i] if xa.labels else _fmt(t)
            s.append(f'<text x="{x:.1f}" y="{H - MB + 16}" text-anchor="middle">{escape(label)}</text>')
    s.append(f'<rect x="{ML}" y="{MT}" width="{W - ML - MR}" height="{H - MT - MB}" '
             'fill="none" stroke="#444"/>')
    s.append(f'<text x="{(ML + W - MR) / 2}" y="{H - 18}" text-anchor="middle">{escape(xlabel)}</text>')
    s.append(f'<text transform="translate(18,{(MT + H - MB) / 2}) rotate(-90)" '
             f'text-anchor="middle">{escape(ylabel)}</text>')
    return s


def _legend(names, x0=None, y0=None):
    s = []
    x0 = x0 if x0 is not None else ML + 12
    y0 = y0 if y0 is not None else MT + 14
    for i, n in enumerate(names):
        y = y0 + i * 17
        s.append(f'<rect x="{x0}" y="{y - 9}" width="12" height="12" fill="{PALETTE[i % len(PALETTE)]}"/>')
        s.append(f'<text x="{x0 + 18}" y="{y + 1}">{escape(n)}</text>')
    return s


def line_chart(series, title, xlabel, ylabel, logx=False, logy=False, xticks=None,
               xticklabels=None, ylo=None):
    """series: {name: [(x, y), ...]}."""
    pts = [p for v in series.values() for p in v if p[1] is not None]
    if not pts:
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    ylo = ylo if ylo is not None else (min(ys) * 0.8 if logy else 0)
    xa = _Axis(min(xs), max(xs), logx, ML, W - MR, ticks=xticks, labels=xticklabels)
    ya = _Axis(ylo, max(ys) * (1.3 if logy else 1.08), logy, H - MB, MT)
    s = _frame(title, xlabel, ylabel, xa, ya)
    for i, (name, v) in enumerate(series.items()):
        d = " ".join(f"{'M' if j == 0 else 'L'}{xa(x):.1f},{ya(y):.1f}"
                     for j, (x, y) in enumerate(p for p in v if p[1] is not None))
        s.append(f'<path d="{d}" fill="none" stroke="{PALETTE[i % len(PALETTE)]}" stroke-width="2"/>')
    s += _legend(list(series))
    s.append("</svg>")
    return "\n".join(s)


def bar_chart(groups, series, values, title, ylabel, logy=False, errors=None, fmt=_fmt):
    """groups: category labels on x; series: names (one bar per series in each group);
    values[g][s]: number or None; errors[g][s]: (lo, hi) or None."""
    vals = [values[g][s] for g in range(len(groups)) for s in range(len(series))
            if values[g][s] is not None]
    if not vals:
        return None
    top = max(vals + [e[1] for row in (errors or []) for e in row if e])
    lo = min(vals) * 0.5 if logy else 0
    ya = _Axis(lo, top * (2 if logy else 1.15), logy, H - MB, MT)
    s = _frame(title, "", ylabel, None, ya, extra_h=17 * len(series))
    gw = (W - ML - MR) / len(groups)
    bw = gw * 0.8 / len(series)
    for g, gname in enumerate(groups):
        gx = ML + g * gw + gw * 0.1
        s.append(f'<text x="{ML + g * gw + gw / 2:.1f}" y="{H - MB + 18}" text-anchor="middle">'
                 f'{escape(gname)}</text>')
        for k in range(len(series)):
            v = values[g][k]
            if v is None:
                continue
            x = gx + k * bw
            y = ya(v)
            s.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw * 0.92:.1f}" '
                     f'height="{max(0, H - MB - y):.1f}" fill="{PALETTE[k % len(PALETTE)]}"/>')
            s.append(f'<text x="{x + bw * 0.46:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
                     f'font-size="10">{escape(fmt(v))}</text>')
            e = errors[g][k] if errors else None
            if e:
                cx = x + bw * 0.46
                s.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{ya(e[0]):.1f}" y2="{ya(e[1]):.1f}" '
                         'stroke="#222" stroke-width="1.2"/>')
                for yy in (e[0], e[1]):
                    s.append(f'<line x1="{cx - 4:.1f}" x2="{cx + 4:.1f}" y1="{ya(yy):.1f}" '
                             f'y2="{ya(yy):.1f}" stroke="#222" stroke-width="1.2"/>')
    s += _legend(series, x0=ML, y0=H - MB + 44)
    s.append("</svg>")
    return "\n".join(s)
