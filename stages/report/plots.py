"""Hand-written inline SVG plots: line plots, horizontal bar charts, histograms.

No plotting library: a few hundred bytes of SVG per plot, inlined into the page, readable without
any network access. Every plot has a title and labelled axes (with units where they apply).
Text is escaped; colours come from the Okabe-Ito palette, readable by colour-blind readers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Sequence

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999")
CHAR_WIDTH = 6.5  # approximate width of a 12px sans-serif character, for layout
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 20, 30, 46


@dataclass(frozen=True)
class Series:
    name: str
    x: Sequence[float]
    y: Sequence[float]


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def nice_ticks(lo: float, hi: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [lo, hi].

    integer: ticks at whole numbers only (for counts).
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if integer:
        step = max(1, round(step))
    first = math.floor(lo / step + 1e-9) * step
    ticks = []
    value = first
    while value < hi + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks


def format_number(value: float, step: float | None = None) -> str:
    """Compact tick text: 250, 1.5k, 2M, 0.25."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{value / limit:.3g}{suffix}"
    if step is not None and step < 1:
        decimals = max(0, -math.floor(math.log10(step) + 1e-9))
        return f"{value:.{decimals}f}"
    return f"{value:.4g}"


def _svg_open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg class="plot" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text class="plot-title" x="{width / 2:.1f}" y="16" text-anchor="middle">{escape(title)}</text>',
    ]


def _axis_labels(width: int, height: int, x_label: str, y_label: str) -> list[str]:
    plot_mid_y = MARGIN_TOP + (height - MARGIN_TOP - MARGIN_BOTTOM) / 2
    plot_mid_x = MARGIN_LEFT + (width - MARGIN_LEFT - MARGIN_RIGHT) / 2
    return [
        f'<text class="axis-label x-label" x="{plot_mid_x:.1f}" y="{height - 8}" '
        f'text-anchor="middle">{escape(x_label)}</text>',
        f'<text class="axis-label y-label" x="14" y="{plot_mid_y:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {plot_mid_y:.1f})">{escape(y_label)}</text>',
    ]


def _legend(names: list[str], width: int, top: float) -> tuple[list[str], float]:
    """Legend entries in rows under the title; returns the parts and the height used."""
    parts, x, y = [], float(MARGIN_LEFT), top
    for index, name in enumerate(names):
        item_width = 22 + CHAR_WIDTH * len(name) + 14
        if x + item_width > width - MARGIN_RIGHT and x > MARGIN_LEFT:
            x, y = float(MARGIN_LEFT), y + 16
        parts.append(
            f'<g class="legend-item"><rect x="{x:.1f}" y="{y - 9:.1f}" width="14" height="10" '
            f'fill="{colour(index)}"/><text x="{x + 18:.1f}" y="{y:.1f}">{escape(name)}</text></g>'
        )
        x += item_width
    return parts, (y - top + 16) if names else 0.0


def _downsample(x: list[float], y: list[float], max_points: int) -> tuple[list[float], list[float]]:
    if len(x) <= max_points:
        return x, y
    stride = math.ceil(len(x) / max_points)
    keep = list(range(0, len(x), stride))
    if keep[-1] != len(x) - 1:
        keep.append(len(x) - 1)
    return [x[i] for i in keep], [y[i] for i in keep]


def line_plot(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 640,
    height: int = 320,
    y_range: tuple[float | None, float | None] = (None, None),
    max_points: int = 600,
) -> str:
    """Lines of y against x, one per series (NaN values break a line), with a legend."""
    cleaned = []
    for s in series:
        xs, ys = _downsample([float(v) for v in s.x], [float(v) for v in s.y], max_points)
        cleaned.append((s.name, xs, ys))
    finite_x = [v for _, xs, ys in cleaned for v, w in zip(xs, ys) if math.isfinite(v) and math.isfinite(w)]
    finite_y = [w for _, xs, ys in cleaned for v, w in zip(xs, ys) if math.isfinite(v) and math.isfinite(w)]
    x_ticks = nice_ticks(min(finite_x, default=0.0), max(finite_x, default=1.0))
    y_lo = y_range[0] if y_range[0] is not None else min(finite_y, default=0.0)
    y_hi = y_range[1] if y_range[1] is not None else max(finite_y, default=1.0)
    y_ticks = nice_ticks(y_lo, y_hi)

    parts = _svg_open(width, height, title)
    legend, legend_height = _legend([name for name, _, _ in cleaned], width, MARGIN_TOP - 2)
    top = MARGIN_TOP + legend_height
    left, right, bottom = MARGIN_LEFT, width - MARGIN_RIGHT, height - MARGIN_BOTTOM
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def px(v: float) -> float:
        return left + (v - x0) / ((x1 - x0) or 1) * (right - left)

    def py(v: float) -> float:
        return bottom - (v - y0) / ((y1 - y0) or 1) * (bottom - top)

    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else None
    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else None
    for t in y_ticks:
        parts.append(f'<line class="grid" x1="{left}" x2="{right}" y1="{py(t):.1f}" y2="{py(t):.1f}"/>')
        parts.append(
            f'<text class="tick" x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{format_number(t, y_step)}</text>'
        )
    for t in x_ticks:
        parts.append(f'<line class="tick-mark" x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{bottom}" y2="{bottom + 5}"/>')
        parts.append(
            f'<text class="tick" x="{px(t):.1f}" y="{bottom + 18}" text-anchor="middle">{format_number(t, x_step)}</text>'
        )
    parts.append(f'<path class="axis" d="M{left},{top} V{bottom} H{right}"/>')
    for index, (name, xs, ys) in enumerate(cleaned):
        segments, current = [], []
        for v, w in zip(xs, ys):
            if math.isfinite(v) and math.isfinite(w):
                current.append(f"{px(v):.1f},{py(w):.1f}")
            elif current:
                segments.append(current)
                current = []
        if current:
            segments.append(current)
        for segment in segments:
            if len(segment) == 1:
                cx, cy = segment[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour(index)}"/>')
            else:
                parts.append(
                    f'<polyline class="series" fill="none" stroke="{colour(index)}" stroke-width="1.6" '
                    f'points="{" ".join(segment)}"><title>{escape(name)}</title></polyline>'
                )
    parts += legend
    parts += _axis_labels(width, height, x_label, y_label)
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    categories: Sequence[str],
    groups: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str,
    value_label: str,
    category_label: str,
    width: int = 640,
    value_format=lambda v: format_number(v),
) -> str:
    """Horizontal bars: one row per category, one bar per group (NaN: no bar, marked n/a)."""
    label_width = max([CHAR_WIDTH * len(c) for c in categories] + [40]) + 16
    bar, gap = 13, 10
    legend, legend_height = _legend([name for name, _ in groups], width, MARGIN_TOP - 2)
    top = MARGIN_TOP + legend_height
    row_height = bar * len(groups) + gap
    height = int(top + row_height * len(categories) + MARGIN_BOTTOM)
    left, right, bottom = MARGIN_LEFT + label_width, width - MARGIN_RIGHT - 40, height - MARGIN_BOTTOM
    values = [v for _, vs in groups for v in vs if math.isfinite(v)]
    ticks = nice_ticks(min(0.0, *values) if values else 0.0, max(values, default=1.0))
    v0, v1 = ticks[0], ticks[-1]

    def px(v: float) -> float:
        return left + (v - v0) / ((v1 - v0) or 1) * (right - left)

    parts = _svg_open(width, height, title)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else None
    for t in ticks:
        parts.append(f'<line class="grid" x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top}" y2="{bottom}"/>')
        parts.append(
            f'<text class="tick" x="{px(t):.1f}" y="{bottom + 18}" text-anchor="middle">{format_number(t, step)}</text>'
        )
    for row, category in enumerate(categories):
        y = top + row * row_height + gap / 2
        parts.append(
            f'<text class="category" x="{left - 8}" y="{y + bar * len(groups) / 2 + 4:.1f}" '
            f'text-anchor="end">{escape(category)}</text>'
        )
        for index, (name, vs) in enumerate(groups):
            value = vs[row]
            bar_y = y + index * bar
            if not math.isfinite(value):
                parts.append(f'<text class="na" x="{left + 4}" y="{bar_y + bar - 3:.1f}">n/a</text>')
                continue
            x_start, x_end = sorted((px(0.0 if v0 <= 0 else v0), px(value)))
            parts.append(
                f'<rect x="{x_start:.1f}" y="{bar_y:.1f}" width="{max(x_end - x_start, 0.5):.1f}" '
                f'height="{bar - 2}" fill="{colour(index)}"><title>{escape(f"{category}, {name}: {value_format(value)}")}'
                f"</title></rect>"
            )
            parts.append(f'<text class="value" x="{x_end + 4:.1f}" y="{bar_y + bar - 3:.1f}">{escape(value_format(value))}</text>')
    parts.append(f'<path class="axis" d="M{left},{top} V{bottom} H{right}"/>')
    parts += legend
    parts += _axis_labels(width, height, value_label, category_label)
    parts.append("</svg>")
    return "".join(parts)


def histogram(
    values: Sequence[float],
    *,
    bins: int,
    value_range: tuple[float, float],
    title: str,
    x_label: str,
    y_label: str,
    width: int = 480,
    height: int = 260,
) -> str:
    """Counts of `values` in `bins` equal bins over `value_range` (the last bin is closed)."""
    lo, hi = value_range
    counts = [0] * bins
    for v in values:
        if math.isfinite(v) and lo <= v <= hi:
            counts[min(int((v - lo) / (hi - lo) * bins), bins - 1)] += 1
    y_ticks = nice_ticks(0, max(max(counts), 1), count=4, integer=True)
    left, right, top, bottom = MARGIN_LEFT, width - MARGIN_RIGHT, MARGIN_TOP, height - MARGIN_BOTTOM

    def px(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (right - left)

    def py(v: float) -> float:
        return bottom - v / y_ticks[-1] * (bottom - top)

    parts = _svg_open(width, height, title)
    for t in y_ticks:
        parts.append(f'<line class="grid" x1="{left}" x2="{right}" y1="{py(t):.1f}" y2="{py(t):.1f}"/>')
        parts.append(f'<text class="tick" x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{format_number(t)}</text>')
    edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
    edge_step = edges[1] - edges[0]
    for i, count in enumerate(counts):
        x_a, x_b = px(edges[i]), px(edges[i + 1])
        tip = f"{format_number(edges[i], edge_step)} to {format_number(edges[i + 1], edge_step)}: {count}"
        parts.append(
            f'<rect x="{x_a + 1:.1f}" y="{py(count):.1f}" width="{x_b - x_a - 2:.1f}" height="{bottom - py(count):.1f}" '
            f'fill="{colour(0)}"><title>{escape(tip)}</title></rect>'
        )
    label_every = max(1, math.ceil(bins / 10))
    for i, edge in enumerate(edges):
        if i % label_every == 0 or i == bins:
            parts.append(
                f'<text class="tick" x="{px(edge):.1f}" y="{bottom + 18}" text-anchor="middle">{format_number(edge, edge_step)}</text>'
            )
    parts.append(f'<path class="axis" d="M{left},{top} V{bottom} H{right}"/>')
    parts += _axis_labels(width, height, x_label, y_label)
    parts.append("</svg>")
    return "".join(parts)
