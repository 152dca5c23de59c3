"""Figures of the generated report (PNG, matplotlib Agg). Every function takes the long-format
rows of one table, writes one PNG and returns its path, or returns None when the table has no
rows for it (the report then says so). Axes are labelled with units."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from repro.report.format import is_percent, label_of  # noqa: E402

DPI = 110


def _save(fig, path: Path, dpi: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, format="png")
    plt.close(fig)
    return path


def _scale(metric: str) -> float:
    return 100.0 if is_percent(metric) else 1.0


PREFERRED_DATASETS = ("arith_test", "math500")  # drawn when a per-step metric is logged on several datasets


def main_dataset(datasets) -> str:
    """The dataset a single-panel figure shows: the in-distribution test set when present, else the first."""
    ds = sorted(set(datasets))
    return next((d for d in PREFERRED_DATASETS if d in ds), ds[0])


def curve_rows(df: pd.DataFrame, metric: str, methods: list[str] | None = None) -> pd.DataFrame:
    """Per-step rows (step >= 0) of one metric, optionally restricted to some methods."""
    rows = df[(df["metric"] == metric) & (df["step"] >= 0)]
    if methods is not None:
        rows = rows[rows["method"].isin(methods)]
    return rows


def _plot_curves(ax, rows: pd.DataFrame, metric: str, dataset: str | None = None) -> None:
    """Mean over seeds per method, a min-max band over seeds and one thin line per seed."""
    if dataset is not None:
        rows = rows[rows["dataset"] == dataset]
    s = _scale(metric)
    for i, (method, g) in enumerate(sorted(rows.groupby("method"), key=lambda kv: kv[0])):
        color = f"C{i % 10}"
        per_seed = g.groupby(["seed", "step"])["value"].mean().unstack("seed").sort_index() * s
        steps = per_seed.index.to_numpy()
        n_seeds = per_seed.shape[1]
        if n_seeds > 1:
            for col in per_seed.columns:
                ax.plot(steps, per_seed[col].to_numpy(), color=color, lw=0.6, alpha=0.35)
            ax.fill_between(steps, per_seed.min(axis=1), per_seed.max(axis=1), color=color, alpha=0.15, lw=0)
        ax.plot(steps, per_seed.mean(axis=1).to_numpy(), color=color, lw=1.8, marker="o" if len(steps) < 15 else None,
                ms=3, label=f"{method} (n={n_seeds})")
    ax.set_xlabel("training step (optimiser steps)")
    ax.set_ylabel(label_of(metric))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def curves_figure(df: pd.DataFrame, metrics: list[str], path: Path, title: str, methods: list[str] | None = None,
                  dataset: str | None = None, dpi: int = DPI) -> Path | None:
    """One panel per metric: value vs step per method, mean over seeds with seed spread.

    For metrics logged on several datasets only ``dataset`` (default: :func:`main_dataset`) is drawn.
    """
    panels = []
    for m in metrics:
        rows = curve_rows(df, m, methods)
        if rows.empty:
            continue
        ds = dataset if dataset in set(rows["dataset"]) else main_dataset(rows["dataset"])
        panels.append((m, rows, ds))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (m, rows, ds) in zip(axes[0], panels):
        _plot_curves(ax, rows, m, ds)
        ax.set_title(f"{label_of(m).split(' (')[0]} on {ds}", fontsize=10)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path, dpi)


def _law_curve(a: float, b: float, h: np.ndarray) -> np.ndarray:
    """R = -a exp(H) + b (Cui et al. 2025, Eq. of the entropy-performance law)."""
    return -a * np.exp(h) + b


def _fit_law(h: np.ndarray, r: np.ndarray) -> tuple[float, float]:
    """Least-squares a, b of R = -a exp(H) + b. Uses the method package's fit when it is there."""
    try:
        from methods.entropy_mechanism.law import fit_entropy_law

        a, b = fit_entropy_law(h, r)
        return float(a), float(b)
    except ImportError:
        # linear least squares in x = exp(H): R = slope * x + b with slope = -a
        slope, b = np.polyfit(np.exp(h), r, 1)
        return float(-slope), float(b)


def _early_fit(pts: pd.DataFrame, frac: float) -> tuple[float, float, int] | None:
    """a, b fitted on the earliest points (in step order), as the method package defines the early fit."""
    h, r = pts["H"].to_numpy(), pts["R"].to_numpy()
    try:
        from methods.entropy_mechanism.law import early_fit

        res = early_fit(h, r, frac=frac)
        return float(res["a"]), float(res["b"]), int(res["n_fit"])
    except ImportError:
        n_fit = max(3, int(np.ceil(frac * h.size)))
    except ValueError:
        return None
    if n_fit >= h.size or np.unique(h[:n_fit]).size < 2:
        return None
    a, b = _fit_law(h[:n_fit], r[:n_fit])
    return a, b, n_fit


def pick_metric(df: pd.DataFrame, candidates: list[str], curves: bool = True) -> str | None:
    """The first candidate metric that has rows (per-step rows if ``curves``, else final rows)."""
    rows = df[df["step"] >= 0] if curves else df[df["step"] == -1]
    present = set(rows["metric"])
    return next((m for m in candidates if m in present), None)


def law_points(df: pd.DataFrame, score_metric: str) -> pd.DataFrame:
    """(method, seed, step, H, R): each score row with the entropy of its rollout, paired as fit_law pairs the
    law's points (repro.report.tables.law_pairs), on the score's main dataset."""
    from repro.report.tables import law_pairs

    columns = ["method", "seed", "step", "H", "R"]
    r = curve_rows(df, score_metric)
    if r.empty:
        return pd.DataFrame(columns=columns)
    ds = main_dataset(r["dataset"])
    df = df[(df["metric"] != score_metric) | (df["dataset"] == ds)]
    parts = [pd.DataFrame(dict(zip(columns, (method, seed, steps, h, sc))))
             for method in sorted(set(r["method"]))
             for seed, (steps, h, sc) in law_pairs(df, method, score_metric).items()]  # {} without entropy rows
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def law_figure(df: pd.DataFrame, path: Path, score_metric: str = "acc_greedy", law_method: str = "grpo",
               early_fraction: float = 0.15, dpi: int = DPI) -> Path | None:
    """Scatter of (entropy, score) per method with the fitted R = -a e^H + b, its ceiling b - a at
    H = 0, and the fit on the first ``early_fraction`` of steps extrapolated to the rest."""
    pts = law_points(df, score_metric)
    if len(pts) < 3:
        return None
    s = _scale(score_metric)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, (method, g) in enumerate(sorted(pts.groupby("method"), key=lambda kv: kv[0])):
        ax.scatter(g["H"], g["R"] * s, s=14, color=f"C{i % 10}", alpha=0.75, label=f"{method}")
    fit_pts = pts[pts["method"] == law_method] if law_method in set(pts["method"]) else pts
    a_rows = final_of(df, "law_a", law_method)
    b_rows = final_of(df, "law_b", law_method)
    if a_rows is not None and b_rows is not None:
        a, b, src = a_rows, b_rows, "table"
    else:
        a, b = _fit_law(fit_pts["H"].to_numpy(), fit_pts["R"].to_numpy())
        src = "refit"
    hmax = float(pts["H"].max()) * 1.05
    grid = np.linspace(0.0, max(hmax, 1e-3), 200)
    ax.plot(grid, _law_curve(a, b, grid) * s, "k-", lw=1.5,
            label=f"fit on {law_method}: R = -{a:.3g} e^H + {b:.3g} ({src})")
    ax.axhline((b - a) * s, color="k", ls=":", lw=1.2, label=f"predicted ceiling (H = 0): {(b - a) * s:.3g}")
    early = _early_fit(fit_pts.sort_values(["step", "seed"]), early_fraction)
    if early is not None:
        ea, eb, n_fit = early
        rmse = final_of(df, "law_early_fit_rmse", law_method)
        lab = f"fit on the first {early_fraction:.0%} of points ({n_fit}), extrapolated"
        if rmse is not None:
            lab += f"; table RMSE {rmse * s:.3g}"
        ax.plot(grid, _law_curve(ea, eb, grid) * s, color="C3", ls="--", lw=1.3, label=lab)
    ax.set_xlabel("policy entropy H (nats / token)")
    ax.set_ylabel(label_of(score_metric))
    ax.set_title("Entropy-performance law R = -a exp(H) + b", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path, dpi)


def final_of(df: pd.DataFrame, metric: str, method: str | None = None) -> float | None:
    """Mean over seeds of a final (step -1) metric, for one method if it has rows, else all."""
    rows = df[(df["metric"] == metric) & (df["step"] == -1)]
    if method is not None and method in set(rows["method"]):
        rows = rows[rows["method"] == method]
    if rows.empty:
        return None
    return float(rows["value"].mean())


def bars_figure(groups: dict[str, dict[str, np.ndarray]], path: Path, ylabel: str, title: str,
                xlabel: str = "", dpi: int = DPI) -> Path | None:
    """Grouped bars: x = group, one bar per series = mean over seeds, dots = the seeds.

    ``groups[group][series]`` is the 1-D array of per-seed values (already in display units).
    """
    groups = {g: {k: v for k, v in d.items() if len(v)} for g, d in groups.items()}
    groups = {g: d for g, d in groups.items() if d}
    if not groups:
        return None
    series = sorted({k for d in groups.values() for k in d})
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(groups) * max(1, len(series)) * 0.5 + 2), 4.0))
    x = np.arange(len(groups))
    for j, name in enumerate(series):
        means, xs = [], []
        for i, g in enumerate(groups):
            if name in groups[g]:
                v = np.asarray(groups[g][name], dtype=float)
                xi = x[i] - 0.4 + width * (j + 0.5)
                means.append(v.mean())
                xs.append(xi)
                ax.scatter(np.full(v.size, xi), v, color="k", s=9, zorder=3)
        ax.bar(xs, means, width=width * 0.92, color=f"C{j % 10}", alpha=0.8, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(list(groups), rotation=20 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center",
                       fontsize=8)
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=11)
    ax.axhline(0, color="k", lw=0.6)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path, dpi)


def marker_figure(points: list[tuple[str, float, float]], path: Path, step: int, dpi: int = DPI) -> Path | None:
    """One-shot EM's prompt-rank runs: x = the base model's careful-marker share on the prompt, y = the greedy
    accuracy change from step 0 to ``step`` (pp); ``points`` = (label, share, change). The quadrants at x = 1/2 and
    y = 0 show whether the change follows the marker that is ahead. None without points."""
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    xs = np.array([p[1] for p in points])
    ys = np.array([p[2] for p in points])
    ax.scatter(xs, ys, color=["C2" if y > 0 else "C3" for y in ys], s=28, zorder=3)
    for label, x, y in points:
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.axvline(0.5, color="k", lw=0.6, ls="--")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlim(0, 1)
    ax.set_xlabel("careful-marker share of the base model on the prompt (at T_s)")
    ax.set_ylabel(f"greedy accuracy, step {step} − step 0 (pp)")
    ax.set_title("What EM from one prompt does, by the prompt's majority style", fontsize=10)
    ax.grid(alpha=0.3)
    return _save(fig, path, dpi)


TEMP_RE = re.compile(r"(?:^|_)(?:ts|temp|t)_?(\d+(?:\.\d+)?|\d+p\d+)$")


def method_temperature(method: str) -> float | None:
    """Sampling temperature encoded in a method name (``em_ts0.5``, ``one_shot_em_t0.3``, ``em_temp0p9``)."""
    m = TEMP_RE.search(method)
    if not m:
        return None
    return float(m.group(1).replace("p", "."))


def final_groups(df: pd.DataFrame, metric: str, by: str = "dataset", methods: list[str] | None = None,
                 method_key=None) -> dict[str, dict[str, np.ndarray]]:
    """groups[<by value>][<series>] = per-seed final values (display units) for grouped bars."""
    rows = df[(df["metric"] == metric) & (df["step"] == -1)]
    if methods is not None:
        rows = rows[rows["method"].isin(methods)]
    s = _scale(metric)
    out: dict[str, dict[str, np.ndarray]] = {}
    for (grp, method), g in rows.groupby([by, "method"]):
        name = method_key(method) if method_key else method
        if name is None:
            continue
        out.setdefault(str(grp), {})[str(name)] = g.groupby("seed")["value"].mean().to_numpy() * s
    return dict(sorted(out.items()))
