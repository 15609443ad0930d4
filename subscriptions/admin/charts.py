"""Server-rendered SVG charts for the admin: no script, no CDN, every axis labelled."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 70, 16, 16, 48


def _ticks(top: float, count: int = 4) -> list[float]:
    return [top * i / count for i in range(count + 1)]


def _fmt(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1_000:.0f}k"
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.2f}".rstrip("0").rstrip(".")


def _frame(title: str, x_label: str, y_label: str, top: float, body: str, x_ticks: str) -> SafeString:
    plot_h = HEIGHT - TOP - BOTTOM
    grid = []
    for tick in _ticks(top):
        y = TOP + plot_h - (tick / top * plot_h if top else 0)
        grid.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{_fmt(tick)}</text>'
        )
    return mark_safe(  # noqa: S308 (every text in it is escaped above or here)
        f'<svg role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif">'
        f"<title>{escape(title)}</title>{''.join(grid)}"
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="#333"/>'
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM}" stroke="#333"/>'
        f"{body}{x_ticks}"
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" text-anchor="middle" font-size="12">'
        f"{escape(x_label)}</text>"
        f'<text transform="rotate(-90)" x="{-(TOP + HEIGHT - BOTTOM) / 2}" y="14" text-anchor="middle" '
        f'font-size="12">{escape(y_label)}</text></svg>'
    )


def line_chart(points: Sequence[tuple[str, Decimal | int | None]], *, title: str, x_label: str, y_label: str):
    """A line over labelled points (None leaves a gap: a figure that could not be computed)."""
    values = [float(v) for _, v in points if v is not None]
    top = max(values, default=0) * 1.1 or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(points) - 1, 1)
    segments: list[list[str]] = [[]]
    for i, (_, value) in enumerate(points):
        if value is None:
            segments.append([])
            continue
        segments[-1].append(f"{LEFT + i * step:.1f},{TOP + plot_h - float(value) / top * plot_h:.1f}")
    body = "".join(
        f'<polyline fill="none" stroke="#417690" stroke-width="2" points="{" ".join(s)}"/>' for s in segments if s
    )
    every = max(1, len(points) // 6)
    x_ticks = "".join(
        f'<text x="{LEFT + i * step:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="11">'
        f"{escape(label)}</text>"
        for i, (label, _) in enumerate(points)
        if i % every == 0
    )
    return _frame(title, x_label, y_label, top, body, x_ticks)


def bar_chart(bars: Sequence[tuple[str, Decimal | int | None]], *, title: str, x_label: str, y_label: str):
    """One bar per label (a missing figure draws no bar; the table beside it says why)."""
    values = [float(v) for _, v in bars if v is not None]
    top = max(values, default=0) * 1.1 or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(bars), 1)
    body, x_ticks = [], []
    for i, (label, value) in enumerate(bars):
        x = LEFT + i * slot + slot * 0.15
        if value is not None and value > 0:
            h = float(value) / top * plot_h
            body.append(
                f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                'fill="#79aec8"/>'
            )
        x_ticks.append(
            f'<text x="{LEFT + (i + 0.5) * slot:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
            f'font-size="11">{escape(label)}</text>'
        )
    return _frame(title, x_label, y_label, top, "".join(body), "".join(x_ticks))
