"""The readout table on an experiment's admin page: per arm, each figure with its 95% interval."""

from __future__ import annotations

from django.utils.html import format_html, format_html_join

from subscriptions.services.experiment_readout import Interval, Proportion, experiment_readout


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _interval(i: Interval | None, fmt=_pct) -> str:
    if i is None or i.value is None:
        return "–"
    return f"{fmt(i.value)} [{fmt(i.low)}, {fmt(i.high)}]"


def _proportion(p: Proportion) -> str:
    return f"{p.count}/{p.of} = {_interval(p.rate)}"


def _vs(p: Proportion) -> str:
    return "control" if p.vs_control is None else _interval(p.vs_control, lambda v: f"{v * 100:+.1f} pt")


def readout_table(experiment) -> str:
    if experiment.pk is None:
        return "–"
    readout = experiment_readout(experiment_id=experiment.pk)
    money = lambda v: f"{v:.2f}"  # noqa: E731
    money_diff = lambda v: f"{v:+.2f}"  # noqa: E731
    rows = [
        ("exposures", [str(a.exposures) for a in readout.arms]),
        ("trial starts", [_proportion(a.trial_starts) for a in readout.arms]),
        ("  vs control", [_vs(a.trial_starts) for a in readout.arms]),
        ("conversions (paid)", [_proportion(a.conversions) for a in readout.arms]),
        ("  vs control", [_vs(a.conversions) for a in readout.arms]),
        (f"net revenue ({readout.currency})", [a.revenue for a in readout.arms]),
        ("revenue per exposure", [_interval(a.revenue_per_exposure, money) for a in readout.arms]),
        (
            "  vs control",
            [
                "control" if a.is_control else _interval(a.revenue_per_exposure_vs_control, money_diff)
                for a in readout.arms
            ],
        ),
    ]
    for days in (30, 60):
        rows.append((f"retained at {days} days", [_proportion(a.retention[days]) for a in readout.arms]))
        rows.append(("  vs control", [_vs(a.retention[days]) for a in readout.arms]))
    head = format_html_join(
        "", "<th>{}</th>", ((a.arm + (" (control)" if a.is_control else ""),) for a in readout.arms)
    )
    body = format_html_join(
        "",
        "<tr><th>{}</th>{}</tr>",
        ((label, format_html_join("", "<td>{}</td>", ((c,) for c in cells))) for label, cells in rows),
    )
    note = (
        f"95% intervals: Wilson (rates), Newcombe (differences in points), normal (revenue per exposure, "
        f"Welch for its difference). {readout.payments_in_other_currencies} exposed customer(s) also paid in "
        f"other currencies (not counted in revenue)."
    )
    return format_html('<table class="readout"><tr><th></th>{}</tr>{}</table><p class="help">{}</p>', head, body, note)
