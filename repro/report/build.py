"""Build the reproduction report of one tier from the spine's result tables.

    python -m repro.report.build --tier tiny --results results/tiny/latest \
        --out reports/tiny/<version> [--wall-times work/tiny/wall_times.json]

Writes ``<out>/report.md``, ``<out>/report.html`` and ``<out>/figures/*.png`` and points
``<out>/../latest`` at ``<out>`` (relative symlink, replaced atomically). A missing table makes
its section say "not run"; nothing here invents a number: every number printed is a table value,
a mean / IQM / bootstrap CI over seeds of table values (repro.stats), or a published figure from
config/paper_tables.yaml.
"""

from __future__ import annotations

import hashlib
import html
import string
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from repro.cli import parse_dataclass
from repro.io import atomic_symlink, atomic_write_text
from repro.report import figures as figs
from repro.report.format import fmt, fmt_delta, is_percent, label_of
from repro.report.tables import (
    TABLES,
    StatsSettings,
    final_rows,
    headline_rows,
    load_results,
    provenance,
    read_wall_times,
    summarize_cell,
    summarize_macro,
)

TEMPLATES = Path(__file__).parent / "templates"
NOT_RUN = "**not run** — no `{table}.csv` in `{results}`."


@dataclass
class ReportConfig:
    """Build report.md, report.html and figures/*.png of one tier from its result tables."""

    tier: str = "tiny"  # tier name (tiny, ci, paper): selects the "what differs from the paper" note
    results: str = "results/tiny/latest"  # directory holding the long-format <table>.csv files
    out: str = "reports/tiny/dev"  # output directory, reports/<tier>/<version>
    wall_times: str = ""  # optional: JSON/YAML {stage: seconds, total: s} or a dir of Snakemake benchmark TSVs
    paper_tables: str = "config/paper_tables.yaml"  # the papers' published numbers (with sources)
    config_file: str = ""  # optional: the tier's config file, named and hashed in the provenance header
    bootstrap_reps: int = 2000  # stratified bootstrap replicates per confidence interval
    confidence: float = 0.95  # confidence level of the intervals
    bootstrap_seed: int = 0  # seed of the bootstrap resampling (the report is deterministic)
    early_fit_fraction: float = 0.15  # share of training steps used by the early entropy-law fit figure
    dpi: int = 110  # resolution of the PNG figures
    update_latest: bool = True  # point <out>/../latest at <out>


# What each paper's section shows: the headline metric (final, step -1), the baseline method of the
# effect table, and the per-step metrics drawn as curves.
LLM_PAPERS = ("entropy_mechanism", "empo", "one_shot_em")
PAPERS: dict[str, dict] = {
    "entropy_mechanism": {"metric": "acc_greedy", "baseline": "grpo"},
    "empo": {"metric": "acc_greedy", "baseline": "base"},
    # one-shot EM: the paper's headline is the checkpoint after ~10 optimiser steps
    "one_shot_em": {"metric": "acc_greedy", "baseline": "base", "baseline_from_step0": ("one_shot_em",),
                    "prefer_step": 10},
    "ppl": {"metric": "success", "baseline": "cpl"},
}
# Per-step accuracy curves: the engine logs validation accuracy as `val_acc`; evaluations at
# checkpoints (one-shot EM) log the harness's `acc_greedy`. The first one present is drawn.
SCORE_CURVES = ["val_acc", "val_acc_greedy", "acc_greedy"]
DATASET_ALIASES = {"amc": "amc23", "olympiad_bench": "olympiadbench", "omni-math": "omni_math"}


def _norm_model(name: str) -> str:
    """'Qwen/Qwen2.5-Math-7B' -> 'qwen2.5-math-7b' (the paper tables' row keys)."""
    return name.split("/")[-1].lower()


def _norm_dataset(name: str) -> str:
    n = name.lower()
    return DATASET_ALIASES.get(n, n)


# ---------------------------------------------------------------- markdown helpers
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


class Paper:
    """The published rows of one paper (config/paper_tables.yaml)."""

    def __init__(self, entry: dict | None):
        self.entry = entry or {}
        self.columns = [_norm_dataset(c) for c in self.entry.get("columns", [])]
        self.rows = self.entry.get("rows", {}) or {}

    def value(self, model: str, method: str, dataset: str) -> float | None:
        row = self.rows.get(_norm_model(model), {}).get(method)
        d = _norm_dataset(dataset)
        if row is None or d not in self.columns:
            return None
        return float(row[self.columns.index(d)])

    def delta(self, model: str, method: str, baseline: str) -> float | None:
        """Paper's avg(method) - avg(baseline) in points, for one paper model."""
        r = self.rows.get(model, {})
        if method not in r or baseline not in r or "avg" not in self.columns:
            return None
        i = self.columns.index("avg")
        return float(r[method][i]) - float(r[baseline][i])


# ---------------------------------------------------------------- sections
class Builder:
    def __init__(self, cfg: ReportConfig):
        self.cfg = cfg
        self.st = StatsSettings(cfg.bootstrap_reps, cfg.confidence, cfg.bootstrap_seed)
        self.out = Path(cfg.out)
        self.fig_dir = self.out / "figures"
        self.tables = load_results(cfg.results)
        pt = Path(cfg.paper_tables)
        self.paper_tables = yaml.safe_load(pt.read_text()) if pt.exists() else {}
        self.notes = yaml.safe_load((TEMPLATES / "notes.yaml").read_text())
        self.figures: list[tuple[str, str]] = []

    # -- helpers
    def figure(self, path: Path | None, caption: str) -> str:
        if path is None:
            return f"_Figure not drawn: {caption.split(':')[0]} — no per-step rows for it in the table._\n"
        rel = path.relative_to(self.out).as_posix()
        self.figures.append((rel, caption))
        return f"![{caption}]({rel})\n\n*{caption}*\n"

    def ours_table(self, df: pd.DataFrame, metric: str, paper: Paper | None) -> str:
        rows_f = final_rows(df, metric)
        if rows_f.empty:
            return f"_No final `{metric}` rows._\n"
        datasets = sorted(rows_f["dataset"].unique())
        multi_model = rows_f["model"].nunique() > 1
        header = ["method"] + (["model"] if multi_model else []) + datasets + (["avg"] if len(datasets) > 1 else [])
        out_rows = []
        for (model, method), g in sorted(rows_f.groupby(["model", "method"]), key=lambda kv: (kv[0][1], kv[0][0])):
            row = [method] + ([model] if multi_model else [])
            for d in datasets:
                txt = cell_text(metric, summarize_cell(g[g["dataset"] == d], self.st))
                pv = paper.value(model, method, d) if paper else None
                if pv is not None:
                    txt += f" · paper {pv:.1f}"
                row.append(txt)
            if len(datasets) > 1:
                row.append(cell_text(metric, summarize_macro(g, datasets, self.st)))
            out_rows.append(row)
        return md_table(header, out_rows) + "\n"

    def seed_stats_table(self, df: pd.DataFrame, metrics: list[str]) -> str:
        rows = []
        for metric in metrics:
            f = final_rows(df, metric)
            for (method, model, d), g in sorted(f.groupby(["method", "model", "dataset"])):
                s = summarize_cell(g, self.st)
                if s is None or s.n_runs < 2:
                    continue
                rows.append([method, model, d, label_of(metric), str(s.n_runs), fmt(metric, s.mean), fmt(metric, s.iqm),
                             f"[{fmt(metric, s.ci_low)}, {fmt(metric, s.ci_high)}]",
                             f"[{fmt(metric, s.iqm_ci_low)}, {fmt(metric, s.iqm_ci_high)}]"])
            # rliable-style aggregate over datasets (tasks): pooled mean / IQM, bootstrap stratified by dataset
            for (method, model), g in sorted(f.groupby(["method", "model"])):
                datasets = sorted(g["dataset"].unique())
                s = summarize_macro(g, datasets, self.st) if len(datasets) > 1 else None
                if s is None or s.n_runs < 2:
                    continue
                rows.append([method, model, f"all {len(datasets)} (stratified)", label_of(metric), str(s.n_runs),
                             fmt(metric, s.mean), fmt(metric, s.iqm),
                             f"[{fmt(metric, s.ci_low)}, {fmt(metric, s.ci_high)}]",
                             f"[{fmt(metric, s.iqm_ci_low)}, {fmt(metric, s.iqm_ci_high)}]"])
        if not rows:
            return "_Fewer than 2 seeds everywhere: no seed statistics._\n"
        pct = int(round(self.st.confidence * 100))
        return md_table(["method", "model", "dataset", "metric", "seeds", "mean", "IQM", f"{pct}% CI (mean)",
                         f"{pct}% CI (IQM)"], rows) + "\n"

    def steps_table(self, df: pd.DataFrame, metric: str) -> str:
        """Mean [CI] over seeds of a metric at every evaluated step (rows method x dataset, columns steps)."""
        c = df[(df["metric"] == metric) & (df["step"] >= 0)]
        if c.empty:
            return f"_No per-step `{metric}` rows._\n"
        steps = sorted(c["step"].unique())
        multi_model = c["model"].nunique() > 1
        rows = []
        for (method, model, d), g in sorted(c.groupby(["method", "model", "dataset"])):
            rows.append([method] + ([model] if multi_model else []) + [d] +
                        [cell_text(metric, summarize_cell(g[g["step"] == st], self.st)) for st in steps])
        return md_table(["method"] + (["model"] if multi_model else []) + ["dataset"] + [f"step {st}" for st in steps],
                        rows) + "\n"

    def all_final_table(self, df: pd.DataFrame) -> str:
        """Every final metric, mean over seeds (CI with >= 2 seeds), rows = (method, model, dataset)."""
        f = df[df["step"] == -1]
        if f.empty:
            return "_No final rows._\n"
        metrics = sorted(f["metric"].unique())
        rows = []
        for (method, model, d), g in sorted(f.groupby(["method", "model", "dataset"])):
            r = [method, model, d]
            for m in metrics:
                r.append(cell_text(m, summarize_cell(g[g["metric"] == m], self.st)))
            rows.append(r)
        return md_table(["method", "model", "dataset"] + [label_of(m) for m in metrics], rows) + "\n"

    def paper_table(self, name: str) -> str:
        e = self.paper_tables.get(name)
        if not e:
            return "_No published numbers in config/paper_tables.yaml._\n"
        lines = [f"Source: {e.get('source', '?')}. Protocol: {e.get('protocol', '?')}."]
        if e.get("note"):
            lines.append(f"Note: {e['note']}.")
        cols = e.get("columns", [])
        rows = [[model, method] + [f"{v:.1f}" for v in vals]
                for model, methods in (e.get("rows") or {}).items() for method, vals in methods.items()]
        if rows:
            lines.append("")
            lines.append(md_table(["model", "method"] + cols, rows))
        else:
            lines.append("The paper publishes no table of numbers.")
        return "\n".join(lines) + "\n"

    def effects_table(self, name: str, df: pd.DataFrame, metric: str, baseline: str) -> str:
        """Our difference to the baseline method next to the paper's (avg column), in points."""
        paper = Paper(self.paper_tables.get(name))
        f = final_rows(df, metric)
        f = f[np.isfinite(f["value"].to_numpy(dtype=float))]
        if f.empty or baseline not in set(f["method"]):
            return f"_No final `{metric}` rows of the baseline `{baseline}`: no effect table._\n"
        datasets = sorted(f["dataset"].unique())
        base = f[f["method"] == baseline].groupby("dataset")["value"].mean()
        paper_models = list(paper.rows)
        header = ["method", f"ours: Δ vs {baseline} ({'pp, ' if is_percent(metric) else ''}macro avg over "
                  f"{len(datasets)} dataset(s))"] + [f"paper {m}: Δ avg" for m in paper_models] + ["same direction?"]
        rows = []
        for method in sorted(set(f["method"]) - {baseline}):
            g = f[f["method"] == method].groupby("dataset")["value"].mean()
            common = [d for d in datasets if d in g.index and d in base.index]
            if not common:
                continue
            ours = float(np.mean([g[d] - base[d] for d in common]))
            pd_ = [paper.delta(m, method, baseline) for m in paper_models]
            known = [p for p in pd_ if p is not None]
            if known:
                ours_pts = ours * (100.0 if is_percent(metric) else 1.0)
                agree = all(np.sign(p) == np.sign(ours_pts) for p in known)
                verdict = "yes" if agree else "no"
            else:
                verdict = "– (paper has no such row)"
            rows.append([method, fmt_delta(metric, ours)] + [("–" if p is None else f"{p:+.1f}") for p in pd_] + [verdict])
        if not rows:
            return "_Only the baseline has rows._\n"
        return md_table(header, rows) + "\n"

    def differs(self, name: str, df: pd.DataFrame, hdf: pd.DataFrame) -> str:
        n = self.notes["papers"].get(name, {})
        seeds = df[df["seed"] >= 0].groupby("method")["seed"].nunique()
        fields = defaultdict(lambda: "?", {
            "models": ", ".join(f"`{m}`" for m in sorted(df["model"].unique())),
            "datasets": ", ".join(f"`{d}`" for d in sorted((hdf if not hdf.empty else df)["dataset"].unique())),
            "seeds": ", ".join(f"{k}: {v}" for k, v in seeds.items()),
            "train_note": "the arithmetic task's RL split" if self.cfg.tier != "paper" else "the configured data",
        })
        tier_note = self.notes["short"].get(self.cfg.tier, f"Tier `{self.cfg.tier}`.")
        text = string.Formatter().vformat(n.get("differs", ""), (), fields)
        return (f"**What differs from the paper.** {text} {tier_note}\n\n"
                f"Seeds per method: {fields['seeds']}.\n")

    # -- per-paper extras: claims checked on our numbers
    def claims_entropy(self, df: pd.DataFrame) -> list[str]:
        out = []
        for method in sorted(df["method"].unique()):
            h0 = figs.final_of(df[df["method"] == method], "entropy_initial")
            h1 = figs.final_of(df[df["method"] == method], "entropy_final")
            if h0 is not None and h1 is not None and h0 > 0:
                out.append(f"`{method}`: entropy {fmt('entropy', h0)} → {fmt('entropy', h1)} nats/token "
                           f"(final / initial = {h1 / h0:.2f}; collapse if < 0.5).")
        # early share of the entropy drop, from GRPO's curve (paper: ~73% in the first 1/12)
        c = figs.curve_rows(df, "entropy", ["grpo"])
        if not c.empty:
            mean_c = c.groupby("step")["value"].mean().sort_index()
            steps = mean_c.index.to_numpy()
            if len(steps) >= 3 and mean_c.iloc[0] != mean_c.iloc[-1]:
                cut = steps[0] + (steps[-1] - steps[0]) / 12.0
                at = mean_c[mean_c.index <= cut].iloc[-1]
                share = (mean_c.iloc[0] - at) / (mean_c.iloc[0] - mean_c.iloc[-1])
                out.append(f"GRPO: {share:.0%} of the entropy drop happens by step {int(mean_c[mean_c.index <= cut].index[-1])} "
                           f"(first ~1/12 of {int(steps[-1])} steps; paper: ≈73%).")
        law = {m: figs.final_of(df, m, "grpo") for m in ("law_a", "law_b", "law_ceiling", "law_early_fit_rmse")}
        if law["law_a"] is not None:
            out.append("Law fit R = −a·exp(H) + b (GRPO): " + ", ".join(
                f"{k.removeprefix('law_')} = {fmt(k, v)}" for k, v in law.items() if v is not None) + ".")
        return out

    def claims_one_shot_em(self, df: pd.DataFrame, hdf: pd.DataFrame, metric: str) -> list[str]:
        out = []
        em_methods = [m for m in sorted(df["method"].unique()) if m.startswith(("one_shot_em", "em")) and
                      "then" not in m]
        for m in em_methods:
            c = figs.curve_rows(df, metric, [m])
            if c.empty:
                continue
            ds = figs.main_dataset(c["dataset"])
            mc = c[c["dataset"] == ds].groupby("step")["value"].mean().sort_index()
            peak = int(mc.idxmax())
            out.append(f"`{m}` on `{ds}`: {label_of(metric)} {fmt(metric, mc.iloc[0])} at step {int(mc.index[0])}, "
                       f"peak {fmt(metric, mc.max())} at step {peak}, {fmt(metric, mc.iloc[-1])} at step "
                       f"{int(mc.index[-1])} (paper: peak near step 10, then decline).")
        f = final_rows(hdf, metric)
        order = {m: f[f["method"] == m]["value"].mean() for m in ("em_then_rl", "rl_then_em") if m in set(f["method"])}
        if len(order) == 2:
            out.append(f"Ordering: EM→RL {fmt(metric, order['em_then_rl'])} vs RL→EM {fmt(metric, order['rl_then_em'])} "
                       f"(paper: EM→RL keeps the gain, RL→EM degrades).")
        sk = final_rows(df, "logit_skewness")
        if not sk.empty:
            vals = sk.groupby("method")["value"].mean()
            out.append("Logit skewness (mean over seeds): " + ", ".join(
                f"`{k}` {fmt('logit_skewness', v)}" for k, v in vals.items()) +
                " (paper: EM more right-skewed, RL more left-skewed).")
        return out

    def claims_empo(self, hdf: pd.DataFrame, metric: str) -> list[str]:
        """EMPO vs GRPO-with-labels: our macro-average gap next to the paper's."""
        f = final_rows(hdf, metric)
        f = f[np.isfinite(f["value"].to_numpy(dtype=float))]
        means = f.groupby(["method", "dataset"])["value"].mean()
        out = []
        for method in sorted(m for m in set(f["method"]) if m.startswith("empo")):
            if "grpo" not in set(f["method"]):
                break
            common = [d for d in sorted(set(f["dataset"])) if (method, d) in means and ("grpo", d) in means]
            if not common:
                continue
            gap = float(np.mean([means[(method, d)] - means[("grpo", d)] for d in common]))
            paper = Paper(self.paper_tables.get("empo"))
            pd_ = [f"{m} {paper.delta(m, 'empo', 'grpo'):+.1f}" for m in paper.rows
                   if method == "empo" and paper.delta(m, "empo", "grpo") is not None]
            out.append(f"`{method}` − `grpo` (labels): {fmt_delta(metric, gap)} points, macro average over "
                       f"{len(common)} dataset(s)" + (f" (paper: {', '.join(pd_)})" if pd_ else "") + ".")
        return out

    def claims_ppl(self, df: pd.DataFrame, metric: str) -> list[str]:
        f = final_rows(df, metric)
        if f.empty:
            return []
        kinds = f["dataset"].str.split("/").str[-1]
        out = []
        for kind in sorted(kinds.unique()):
            g = f[kinds == kind].groupby("method")["value"].mean()
            parts = ", ".join(f"`{k}` {fmt(metric, v)}" for k, v in g.sort_values(ascending=False).items())
            checks = []
            if {"ppl", "cpl"} <= set(g.index):
                checks.append(f"PPL ≥ CPL: {'yes' if g['ppl'] >= g['cpl'] else 'no'}")
            if {"cpl", "sft"} <= set(g.index):
                checks.append(f"CPL > SFT: {'yes' if g['cpl'] > g['sft'] else 'no'}")
            out.append(f"{kind} datasets, mean {label_of(metric)} over tasks and seeds: {parts}"
                       + (f" — {'; '.join(checks)}." if checks else "."))
        return out

    # -- figures per paper
    def figures_for(self, name: str, df: pd.DataFrame, spec: dict, hdf: pd.DataFrame) -> list[str]:
        d = self.fig_dir
        dpi = self.cfg.dpi
        parts = []
        if name == "entropy_mechanism":
            score = figs.pick_metric(df, SCORE_CURVES) or spec["metric"]
            parts.append(self.figure(figs.curves_figure(df, ["entropy", "cov_mean"], d / "entropy_mechanism_entropy.png",
                                                        "Policy entropy over training per method", dpi=dpi),
                                     "Entropy over training: policy entropy (nats/token, at the sampling temperature) "
                                     "and, where logged, the batch covariance Cov(log π, A) vs optimiser step per "
                                     "method; line = mean over seeds, band = min–max over seeds"))
            parts.append(self.figure(figs.curves_figure(df, [score], d / "entropy_mechanism_accuracy.png",
                                                        "Validation accuracy over training", dpi=dpi),
                                     f"Accuracy over training: {label_of(score)} vs optimiser step per method"))
            parts.append(self.figure(figs.law_figure(df, d / "entropy_mechanism_law.png", score, "grpo",
                                                     self.cfg.early_fit_fraction, dpi=dpi),
                                     "Entropy-performance law: score vs entropy (nats/token) with R = −a·e^H + b fitted "
                                     "on GRPO, its predicted ceiling b − a at H = 0 (dotted) and the fit on the early "
                                     "steps extrapolated (dashed)"))
        elif name == "empo":
            score = figs.pick_metric(df, SCORE_CURVES) or spec["metric"]
            parts.append(self.figure(figs.curves_figure(df, [score, "semantic_entropy"],
                                                        d / "empo_vs_grpo.png", "EMPO vs GRPO over training",
                                                        methods=[m for m in df["method"].unique()
                                                                 if m.startswith(("empo", "grpo"))], dpi=dpi),
                                     "EMPO vs GRPO: greedy accuracy (%) and semantic entropy of the sampled answers "
                                     "(nats) vs optimiser step; line = mean over seeds, band = min–max over seeds"))
            parts.append(self.figure(figs.curves_figure(df, ["frac_filtered"], d / "empo_filtered.png",
                                                        "Share of prompts removed by entropy thresholding", dpi=dpi),
                                     "Fraction of prompts filtered by the semantic-entropy thresholds (%) vs step"))
            parts.append(self.figure(figs.bars_figure(figs.final_groups(df, spec["metric"]), d / "empo_final.png",
                                                      label_of(spec["metric"]), "Final accuracy per method",
                                                      "dataset", dpi=dpi),
                                     "Final accuracy (%) per dataset and method; bar = mean, dots = seeds"))
        elif name == "one_shot_em":
            parts.append(self.figure(figs.curves_figure(df, [spec["metric"], "loss"], d / "one_shot_em_steps.png",
                                                        "Entropy minimisation: accuracy and loss vs step",
                                                        methods=[m for m in df["method"].unique()
                                                                 if figs.method_temperature(m) is None], dpi=dpi),
                                     "EM accuracy (%) and entropy loss vs optimiser step; thin lines = seeds, band = "
                                     "min–max over seeds (seed spread)"))
            sweep = [m for m in df["method"].unique() if figs.method_temperature(m) is not None]
            parts.append(self.figure(figs.curves_figure(df, [spec["metric"]], d / "one_shot_em_temperature.png",
                                                        "Sensitivity to the sampling temperature T_s",
                                                        methods=sweep + ["one_shot_em"], dpi=dpi) if sweep else None,
                                     "Temperature sensitivity: accuracy (%) vs EM step for each sampling temperature "
                                     "T_s (`em_ts<T>`; `one_shot_em` = the main T_s of the config); line = mean over "
                                     "seeds, band = min–max over seeds"))
            order_methods = [m for m in ("base", "one_shot_em", "grpo", "em_then_rl", "rl_then_em")
                             if m in set(hdf["method"])]
            parts.append(self.figure(figs.bars_figure(figs.final_groups(hdf, spec["metric"], methods=order_methods),
                                                      d / "one_shot_em_ordering.png", label_of(spec["metric"]),
                                                      "EM and RL ordering", "dataset", dpi=dpi)
                                     if {"em_then_rl", "rl_then_em"} & set(order_methods) else None,
                                     "EM/RL ordering: accuracy (%) of EM→RL vs RL→EM next to base and EM alone (the "
                                     "headline values of the table above); bar = mean, dots = seeds"))
            parts.append(self.figure(figs.bars_figure(figs.final_groups(df, "logit_skewness"),
                                                      d / "one_shot_em_skewness.png", "logit skewness (unitless)",
                                                      "Skewness of the generated-step logits", "dataset", dpi=dpi),
                                     "Logit skewness (scipy skew over the full-vocabulary logits per generated step, "
                                     "unitless) per method; bar = mean, dots = seeds"))
        elif name == "ppl":
            f = final_rows(df, spec["metric"])
            for kind in sorted(f["dataset"].str.split("/").str[-1].unique()):
                sub = df[df["dataset"].str.endswith("/" + kind) | (df["dataset"] == kind)]
                groups = figs.final_groups(sub, spec["metric"])
                groups = {k.split("/")[0]: v for k, v in groups.items()}
                parts.append(self.figure(figs.bars_figure(groups, d / f"ppl_success_{kind}.png",
                                                          label_of(spec["metric"]),
                                                          f"MetaWorld success, {kind} datasets", "task", dpi=dpi),
                                         f"PPL, {kind} datasets: final success rate (%) per task and method; bar = "
                                         f"mean over seeds, dots = seeds"))
            parts.append(self.figure(figs.curves_figure(df, [spec["metric"]], d / "ppl_curves.png",
                                                        "Success over training", dpi=dpi),
                                     "Success rate (%) vs training step per method (first dataset), mean and seed "
                                     "spread"))
        return parts

    def paper_section(self, name: str) -> str:
        spec = PAPERS[name]
        title = self.notes["papers"][name]["title"]
        df = self.tables.get(name)
        lines = [f"## {title}", ""]
        if df is None or df.empty:
            lines.append(NOT_RUN.format(table=name, results=self.cfg.results) if df is None else
                         f"**no rows** — `{name}.csv` in `{self.cfg.results}` is empty.")
            lines.append("")
            lines.append("### The paper's numbers\n")
            lines.append(self.paper_table(name))
            return "\n".join(lines)
        paper = Paper(self.paper_tables.get(name))
        full = df
        if name == "ppl":  # the hyper-parameter sweep (its own table below) is not a reported result
            df = without_sweep(df)
        lines.append(f"**Claim.** {self.notes['papers'][name]['claim']}\n")
        hdf, hnotes = headline_rows(df, spec["metric"], spec["baseline"], spec.get("baseline_from_step0", ()),
                                    spec.get("prefer_step"))
        lines.append(self.differs(name, df, hdf))
        premise = self.notes.get("premise_short", {}).get(self.cfg.tier)
        if premise and name in LLM_PAPERS:
            lines.append(f"> {premise}\n")
        lines.append(f"### Ours: final {label_of(spec['metric'])}\n")
        lines.append(f"Mean over seeds; with ≥ 2 seeds also the {self.st.confidence:.0%} stratified-bootstrap CI "
                     f"of the mean and the number of seeds. `avg` = unweighted mean over the datasets. "
                     f"Where the paper has the same model, method and dataset its number follows (`paper`)."
                     + "".join(f" Note: {n}." for n in hnotes) + "\n")
        lines.append(self.ours_table(hdf, spec["metric"], paper))
        lines.append("### Direction and size of effects: ours vs the paper\n")
        lines.append(self.effects_table(name, hdf, spec["metric"], spec["baseline"]))
        if name in LLM_PAPERS:
            lines.append("### What each method elicited: solution styles\n")
            lines.append(self.styles_table(name, df))
        if name == "ppl":
            lines.append(self.ppl_extras(full))
        claims = {"entropy_mechanism": lambda: self.claims_entropy(df),
                  "empo": lambda: self.claims_empo(hdf, spec["metric"]),
                  "one_shot_em": lambda: self.claims_one_shot_em(df, hdf, spec["metric"]),
                  "ppl": lambda: self.claims_ppl(df, spec["metric"])}.get(name, lambda: [])()
        if claims:
            lines.append("Observations on our runs:\n")
            lines += [f"- {c}" for c in claims]
            lines.append("")
        if name == "one_shot_em":
            lines.append(f"### Ours: {label_of(spec['metric'])} at each evaluated EM step\n")
            lines.append(self.steps_table(df, spec["metric"]))
        lines.append("### Figures\n")
        lines += self.figures_for(name, df, spec, hdf)
        csv = self.write_final_csv(name, df)
        lines.append(f"The paper's own numbers, seed statistics (mean, IQM, CIs) and every final metric are in the "
                     f"[appendix](#appendix-wide-tables) and in [`{csv}`]({csv}).\n")
        self.appendix.append(self.appendix_for(name, hdf, df, spec))
        return "\n".join(lines)

    def appendix_for(self, name: str, hdf: pd.DataFrame, df: pd.DataFrame, spec: dict) -> str:
        title = self.notes["papers"][name]["title"]
        return "\n".join([f"### {title}\n", "#### The paper's numbers\n", self.paper_table(name),
                          "#### Seed statistics\n", self.seed_stats_table(hdf, [spec["metric"]]),
                          "#### All final numbers\n", self.all_final_table(df)])

    def write_final_csv(self, name: str, df: pd.DataFrame) -> str:
        """Every final row of ``name`` as a CSV next to the report (mean, sd and runs over seeds)."""
        f = final_or_last(df)
        g = f.groupby(["method", "model", "dataset", "metric"])["value"]
        out = pd.concat([g.mean().rename("mean"), g.std().rename("sd"), g.count().rename("runs")], axis=1).reset_index()
        rel = f"{name}_final.csv"
        atomic_write_text(self.out / rel, out.to_csv(index=False))
        return rel

    def styles_table(self, name: str, df: pd.DataFrame) -> str:
        """Base -> method solution-style shares on the main in-distribution set (greedy and T = 1)."""
        cols = [("style_share_careful_greedy", "careful share, greedy"),
                ("style_share_careful_greedy_mul", "careful share on × problems, greedy"),
                ("style_share_careful_t1", "careful share, T = 1"),
                ("acc_style_careful_t1", "acc. of careful (T = 1)"),
                ("acc_style_quick_t1", "acc. of quick (T = 1)"),
                ("acc_greedy", "acc. (greedy)")]
        f = final_or_last(df)
        if name == "one_shot_em":  # the EM checkpoints are evaluated at steps: the headline step
            f = df[(df["step"] == PAPERS[name]["prefer_step"]) | (df["step"] == -1)]
        ds = "arith_test"
        nano = self.tables.get("nano")
        base = nano[(nano["method"] == "base") & (nano["step"] == -1)] if nano is not None else pd.DataFrame()
        groups = [("base (nano)", base)] if not base.empty else []
        groups += [(m, f[f["method"] == m]) for m in sorted(set(f["method"])) if m != "base"]
        rows = []
        for label, g in groups:
            g = g[g["dataset"] == ds]
            if g.empty or "style_share_careful_greedy" not in set(g["metric"]):
                continue
            rows.append([label] + [cell_text(m, summarize_cell(g[g["metric"] == m], self.st)) for m, _ in cols])
        if not rows:
            return "_No style diagnostics in this table (models without the nano testbed's style markers)._\n"
        note = (f"`{ds}`, mean over seeds [CI]; shares and accuracies in %. The styles are classified by "
                f"benchmarks.arith.styles.classify (the marker a completion starts with).")
        if name == "one_shot_em":
            note += f" EM rows: the checkpoint at step {PAPERS[name]['prefer_step']}."
        return md_table(["method"] + [c for _, c in cols], rows) + "\n\n" + note + "\n"

    def ppl_extras(self, df: pd.DataFrame) -> str:
        """BC start -> each method, the preference-logit diagnostics, and the alpha / KL-weight sweep."""
        out = []
        f = final_rows(df, "success")
        sweep = sorted(m for m in set(f["method"]) if SWEEP_POINT.match(m))
        main = final_rows(without_sweep(df), "success")
        if "bc" in set(main["method"]):
            out.append("### From the shared BC start\n")
            rows = []
            kinds = sorted(main["dataset"].str.split("/").str[-1].unique())
            for m in ["bc"] + sorted(set(main["method"]) - {"bc"}):
                row = [m]
                for k in kinds:
                    g = main[(main["method"] == m) & main["dataset"].str.endswith("/" + k)]
                    s = summarize_macro(g, sorted(g["dataset"].unique()), self.st) if not g.empty else None
                    row.append(cell_text("success", s))
                rows.append(row)
            out.append(md_table(["method"] + [f"{k}: success, mean over tasks [CI]" for k in kinds], rows) + "\n")
        diag = df[(df["step"] == -1) & df["metric"].isin(["logit_sat_frac", "logit_abs_mean", "score_logp", "score_kl"])
                  & ~df["method"].isin(sweep)]
        if not diag.empty:
            out.append("### Preference-logit diagnostics at the end of training\n")
            rows = []
            for m, g in sorted(diag.groupby("method")):
                rows.append([m] + [cell_text(k, summarize_cell(g[g["metric"] == k], self.st)) if k in set(g["metric"])
                                   else "–" for k in ("logit_sat_frac", "logit_abs_mean", "score_logp", "score_kl")])
            out.append(md_table(["method", "share of |logit| > 5", "mean |logit|", "α Σ log π (PPL)",
                                 "λ Σ KL (PPL)"], rows) + "\n\nPooled over tasks, kinds and seeds.\n")
        if sweep:
            out.append("### The alpha / KL-weight sweep (a task that is not reported)\n")
            rows = []
            sw = f[f["method"].isin(sweep)]
            sat = df[(df["step"] == -1) & (df["metric"] == "logit_sat_frac") & df["method"].isin(sweep)]
            for (m, d), g in sorted(sw.groupby(["method", "dataset"])):
                sg = sat[(sat["method"] == m) & (sat["dataset"] == d)]
                rows.append([m, d, cell_text("success", summarize_cell(g, self.st)),
                             cell_text("logit_sat_frac", summarize_cell(sg, self.st)) if not sg.empty else "–"])
            out.append(md_table(["sweep point", "dataset", "success", "share of |logit| > 5"], rows) + "\n\n"
                       "`cpl_a<α>`: CPL at α; `ppl_a<α>_k<r>`: PPL at α with KL weight λ = r·α (r = 1: the regret "
                       "derivation). The values used for the reported tasks were fixed from this sweep before the "
                       "final run (rule in config/config.yaml, section ppl).\n")
        return "\n".join(out)

    def nano_section(self) -> str:
        df = self.tables.get("nano")
        lines = ["## The nano testbed (base model of the LLM stages)", ""]
        if df is None or df.empty:
            lines.append(NOT_RUN.format(table="nano", results=self.cfg.results) if df is None else
                         f"**no rows** — `nano.csv` in `{self.cfg.results}` is empty.")
            return "\n".join(lines) + "\n"
        premise = self.notes.get("premise", {}).get(self.cfg.tier)
        if premise:
            lines.append(f"> {premise}\n")
        lines.append("The ~1M-parameter model every CPU-tier LLM stage starts from, evaluated before any method "
                     "(greedy; 8 samples at T = 1). The rows below are the premises the methods need: a reliable "
                     "style used only part of the time (a, b), lower token entropy when correct (c, One-shot EM's "
                     "premise) and majority vote above greedy (d, EMPO's premise).\n")
        f = final_or_last(df)
        base = f[f["method"] == "base"]
        shown = [("acc_greedy", "accuracy, greedy"), ("acc_t1", "accuracy, T = 1 (pass@1)"),
                 ("pass@8_t1", "(b) pass@8, T = 1"), ("maj@8_t1", "(d) maj@8, T = 1"),
                 ("style_share_quick_greedy_mul", "(a) quick share, greedy, × problems"),
                 ("style_share_careful_greedy_plain", "careful share, greedy, problems without ×"),
                 ("style_share_careful_t1", "(b) careful share, T = 1"),
                 ("acc_style_careful_t1", "accuracy of careful completions, T = 1"),
                 ("acc_style_quick_t1", "accuracy of quick completions, T = 1"),
                 ("entropy_correct_t1", "(c) mean token entropy, correct (nats)"),
                 ("entropy_wrong_t1", "(c) mean token entropy, wrong (nats)")]
        datasets = sorted(d for d in base["dataset"].unique() if d != "macro")
        rows = []
        for m, label in shown:
            if m not in set(base["metric"]):
                continue
            rows.append([label] + [cell_text(m, summarize_cell(base[(base["metric"] == m) & (base["dataset"] == d)],
                                                               self.st)) for d in datasets])
        lines.append(md_table(["premise metric"] + datasets, rows) + "\n")
        sft = f[f["method"] == "sft"]
        if not sft.empty:
            get = lambda m: sft[sft["metric"] == m]["value"].mean()  # noqa: E731
            lines.append(f"SFT: {int(get('parameters')):,} parameters, final loss {get('sft_loss_final'):.4f}, "
                         f"{get('train_seconds') / 60:.1f} min.\n")
        csv = self.write_final_csv("nano", df)
        lines.append(f"Every metric: the [appendix](#appendix-wide-tables) and [`{csv}`]({csv}).\n")
        self.appendix.append("\n".join(["### The nano testbed\n", "#### All final numbers\n",
                                         self.all_final_table(f)]))
        return "\n".join(lines)

    def claims_section(self) -> str:
        from repro.report.claims import judge_all, markdown

        verdicts = judge_all(self.tables, self.st.reps, self.st.confidence, self.st.seed)
        titles = {"entropy_mechanism": "Entropy Mechanism", "empo": "EMPO", "one_shot_em": "One-shot EM", "ppl": "PPL"}
        return ("## Claims at a glance\n\nEach paper's headline claims, tested on our committed tables "
                "(repro/report/claims.py): `reproduced` when the 95% bootstrap CI of our effect lies on the "
                "claimed side of the threshold, `not reproduced` when it lies on the other side, `inconclusive` "
                "when it contains the threshold; `n` = runs (seeds, or seeds x tasks), a single run gives a point "
                "estimate. LLM effects are on `arith_test` (greedy), PPL effects on the heterogeneous datasets.\n\n"
                + markdown(verdicts, titles))

    def provenance_section(self) -> str:
        prov = provenance(self.tables)
        lines = ["## Provenance", ""]
        if not prov:
            lines.append("No result tables found: nothing has run.\n")
        else:
            hashes = prov["config_hashes"]
            cfg_line = (", ".join(f"`{h}`" for h in hashes) if len(hashes) <= 8
                        else f"{len(hashes)} distinct (column `config_hash` of the tables)") or "–"
            files = [Path(f) for f in self.cfg.config_file.split(",") if f.strip()]
            if files:
                named = ", ".join(f"`{_shown_path(f)}` (sha256 {hashlib.sha256(f.read_bytes()).hexdigest()[:12]})"
                                  if f.exists() else f"`{f}` (missing)" for f in files)
                cfg_line = f"{named}; run config hashes: {cfg_line}"
            rows = [["commit", ", ".join(f"`{c}`" for c in prov["commits"]) or "–"],
                    ["dirty working tree", "yes" if prov["dirty"] else "no"],
                    ["config", cfg_line],
                    ["hardware", "; ".join(prov["hardware"]) or "–"],
                    ["results", f"`{self.cfg.results}`"],
                    ["report built", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")]]
            lines.append(md_table(["", ""], rows) + "\n")
            if prov["versions"]:
                lines.append("Package versions: " + ", ".join(
                    f"{k} {' / '.join(v)}" for k, v in sorted(prov["versions"].items())) + ".\n")
            srows = []
            for name in TABLES:
                s = prov["stages"].get(name)
                if name not in prov["stages"]:
                    srows.append([name, "not run", "–", "–"])
                elif s is None:
                    srows.append([name, "?", "no timestamps", "–"])
                else:
                    srows.append([name, str(s["runs"]), f"{s['run_seconds'] / 60:.1f}", f"{s['span_seconds'] / 60:.1f}"])
            lines.append("Wall time per stage, from the runs' `started`/`finished` columns (minutes; *sum* adds the "
                         "runs' durations, *span* is first start to last finish):\n")
            lines.append(md_table(["stage", "runs", "sum of runs (min)", "span (min)"], srows) + "\n")
            ov = prov.get("overall")
            if ov is not None:
                timed = {k: v for k, v in prov["stages"].items() if v}
                top = max(timed.items(), key=lambda kv: kv[1]["run_seconds"])
                goal = ""
                if self.cfg.tier == "tiny":
                    goal = (" — " + ("within" if ov["span_seconds"] <= 30 * 60 else "over")
                            + " the 30-minute goal of the tiny tier")
                total_run = sum(v["run_seconds"] for v in timed.values())
                lines.append(f"All runs together: first start {ov['first_start']}, last finish {ov['last_finish']}: "
                             f"**{ov['span_seconds'] / 60:.1f} min** (the reproduction's wall time without data "
                             f"preparation, table collection and workflow overhead, when all runs came from one "
                             f"invocation; runs reused from earlier invocations stretch it){goal}; the runs' "
                             f"durations add up to {total_run / 60:.1f} min; the largest stage is "
                             f"`{top[0]}` ({top[1]['run_seconds'] / 60:.1f} min of run time).\n")
        if self.cfg.wall_times:
            wt = read_wall_times(self.cfg.wall_times)
            total = wt.pop("total", None)
            lines.append(f"Measured wall time of the reproduction (`{self.cfg.wall_times}`):\n")
            lines.append(md_table(["stage", "wall time (min)"],
                                  [[k, f"{v / 60:.1f}"] for k, v in sorted(wt.items(), key=lambda kv: -kv[1])]
                                  + ([["**total**", f"**{total / 60:.1f}**"]] if total is not None else [])) + "\n")
            if total is not None and self.cfg.tier == "tiny":
                top = max(wt.items(), key=lambda kv: kv[1]) if wt else None
                verdict = ("within" if total <= 30 * 60 else "over") + " the 30-minute goal for the tiny tier"
                lines.append(f"Whole tiny reproduction: {total / 60:.1f} min, {verdict}"
                             + (f"; the largest stage is `{top[0]}` ({top[1] / 60:.1f} min)." if top else ".") + "\n")
        return "\n".join(lines)

    def build(self) -> Path:
        self.fig_dir.mkdir(parents=True, exist_ok=True)  # always there (a Snakemake directory() output)
        present = [k for k, v in self.tables.items() if v is not None]
        tier_note = self.notes["tiers"].get(self.cfg.tier, "")
        head = [f"# Reproduction report — tier `{self.cfg.tier}`", "",
                f"Tables present: {', '.join(f'`{p}`' for p in present) or 'none'}; "
                f"not run: {', '.join(f'`{t}`' for t in TABLES if t not in present) or 'none'}.", "",
                f"> {tier_note}", "",
                "**How to read the numbers.** Accuracies and success rates are in %. Across seeds the report gives "
                "the mean, the interquartile mean (IQM) and a "
                f"{self.st.confidence:.0%} confidence interval from a stratified bootstrap over seeds "
                f"(Agarwal et al. 2021, rliable's percentile method; {self.st.reps} replicates, seed {self.st.seed}) "
                "wherever there are at least 2 seeds. `–` = no value.", ""]
        self.appendix = []
        sections = [self.nano_section()] + [self.paper_section(name) for name in PAPERS]
        body = [self.claims_section(), self.provenance_section()] + sections
        body += ["## Appendix: wide tables\n"] + self.appendix
        md = "\n".join(head + body).rstrip() + "\n"
        _atomic_write(self.out / "report.md", md)
        _atomic_write(self.out / "report.html", render_html(md, f"Reproduction report — {self.cfg.tier}"))
        if self.cfg.update_latest:
            update_latest(self.out)
        return self.out / "report.md"


SWEEP_POINT = __import__("re").compile(r"^(cpl|ppl)_a[0-9.e-]+(_k[0-9.e-]+)?$")


def without_sweep(df: pd.DataFrame) -> pd.DataFrame:
    """PPL rows without the hyper-parameter sweep: its points and every row of the sweep's datasets."""
    sweep = df["method"].str.match(SWEEP_POINT)
    sweep_sets = set(df.loc[sweep, "dataset"])
    return df[~sweep & ~df["dataset"].isin(sweep_sets)]


def final_or_last(df: pd.DataFrame) -> pd.DataFrame:
    """Final rows (step -1), plus, for a (method, model, dataset, metric) with no final row, its rows
    at the last logged step relabelled as final (e.g. the nano SFT summary logged at its last step)."""
    keys = ["method", "model", "dataset", "metric"]
    fin = df[df["step"] == -1]
    have = set(map(tuple, fin[keys].to_numpy().tolist()))
    rest = df[(df["step"] >= 0) & ~df[keys].apply(tuple, axis=1).isin(have)]
    last = rest[rest["step"] == rest.groupby(keys)["step"].transform("max")].assign(step=-1)
    return pd.concat([fin, last], ignore_index=True)


def render_html(md: str, title: str) -> str:
    """Markdown -> a standalone HTML page (markdown-it-py with tables; escaped <pre> without it)."""
    try:
        from markdown_it import MarkdownIt

        body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)
    except ImportError:
        body = f"<pre>{html.escape(md)}</pre>"
    tmpl = string.Template((TEMPLATES / "report.html").read_text())
    return tmpl.substitute(title=html.escape(title), body=body)


def _atomic_write(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def _shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (no machine-specific prefix)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def update_latest(out: Path) -> Path:
    """Point ``out.parent / 'latest'`` at ``out`` with a relative symlink, replaced atomically."""
    out = Path(out)
    if out.name == "latest":
        raise ValueError(f"--out must be a version directory, not {out}")
    return atomic_symlink(out.name, out.parent / "latest")


def main(argv=None) -> None:
    cfg = parse_dataclass(ReportConfig, argv)
    path = Builder(cfg).build()
    print(f"report written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
