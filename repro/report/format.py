"""How numbers and metric names are printed in the report (one place, so tests can recompute)."""

from __future__ import annotations

import math
import re
from pathlib import Path

_PERCENT = re.compile(r"^(val_)?(acc|pass@|maj@|avg@|success|frac_|style_share_|logit_sat_frac)")

UNITS = {
    "entropy": "nats / token",
    "entropy_t1": "nats / token",
    "entropy_initial": "nats / token",
    "entropy_final": "nats / token",
    "semantic_entropy": "nats",
    "loss": "loss value",
    "logit_skewness": "skewness, unitless",
    "logit_skewness_on_reference": "skewness, unitless",
    "cov": "covariance, unitless",
    "cov_mean": "covariance, unitless",
    "entropy_correct_t1": "nats / token",
    "entropy_wrong_t1": "nats / token",
}


def is_percent(metric: str) -> bool:
    """Metrics stored as fractions in [0, 1] that the report prints in percent."""
    return bool(_PERCENT.match(metric))


def label_of(metric: str) -> str:
    """Axis / column label with units."""
    if is_percent(metric):
        return f"{metric} (%)"
    unit = UNITS.get(metric)
    return f"{metric} ({unit})" if unit else metric


def display(metric: str, value: float) -> float:
    """Value in display units (percent metrics x 100)."""
    return value * 100.0 if is_percent(metric) else value


def fmt(metric: str, value: float | None) -> str:
    """Printed form of one number: percent metrics with 1 decimal, others with 4 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    v = display(metric, value)
    if is_percent(metric):
        return f"{v:.1f}"
    return f"{v:.0f}" if abs(v) >= 1e4 else f"{v:.4g}"


def fmt_delta(metric: str, value: float | None) -> str:
    """Signed difference in display units (percentage points for percent metrics)."""
    if value is None or math.isnan(value):
        return "–"
    v = display(metric, value)
    return f"{v:+.1f}" if is_percent(metric) else f"{v:+.4g}"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(c: str) -> str:
        return str(c).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def cell_text(metric: str, summ) -> str:
    """``mean`` for one seed; ``mean [ci_low, ci_high] (n=k)`` for k >= 2 seeds."""
    if summ is None:
        return "–"
    if summ.ci_low is None:
        return fmt(metric, summ.mean)
    return f"{fmt(metric, summ.mean)} [{fmt(metric, summ.ci_low)}, {fmt(metric, summ.ci_high)}] (n={summ.n_runs})"


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (no machine-specific prefix)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
