"""The per-paper findings of the report: "ours vs the paper" lines, style tables, PPL diagnostics, figures.

A mixin of :class:`repro.report.build.Builder` (it uses the builder's tables, settings and helpers), kept apart
so that build.py holds the report's skeleton and this file what each paper's section says beyond its tables.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from repro.report import figures as figs
from repro.report.claims import marker_sign_agreement
from repro.report.format import cell_text, fmt, fmt_delta, label_of, md_table
from repro.report.papers import PAPERS, SCORE_CURVES, Paper
from repro.report.tables import RANK_RUN, SWEEP_POINT, rank_step, final_or_last, final_rows, summarize_cell, summarize_macro, without_sweep


class PaperFindings:
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
            k = figs.final_of(df, "law_steps_per_rollout", "grpo")
            if k is not None:  # fit_law's pairing (older tables: the score at v with the entropy logged at v + 1)
                out.append(f"Its points: each validation score with the mean entropy of the rollout the validated "
                           f"policy generated, over that rollout's {k:.0f} optimiser steps (one entropy per rollout, "
                           f"as the official code logs it per training step; its log row pairs that entropy with the "
                           f"validation after the step's update, one update later, while here both are one policy).")
        return out

    @staticmethod
    def ppl_drift_table(df: pd.DataFrame, sweep: list[str]) -> str:
        """Per dataset, CPL's and PPL's success and where their mean action went, from the BC start to the end."""
        keys = ("behavior_gap", "action_mse_preferred", "action_mse_rejected")
        d = df[df["metric"].isin(keys) & ~df["method"].isin(sweep)]
        if d.empty:
            return ""
        succ = df[(df["metric"] == "success") & (df["step"] == -1)]

        def mean(frame):
            return float(frame["value"].mean()) if not frame.empty else float("nan")

        rows = []
        for (m, ds), g in sorted(d.groupby(["method", "dataset"])):
            start, end = g[g["step"] > 0], g[g["step"] == -1]
            if start.empty or end.empty:
                continue
            s0 = mean(succ[(succ["method"] == "bc") & (succ["dataset"] == ds)])
            s1 = mean(succ[(succ["method"] == m) & (succ["dataset"] == ds)])
            cells = [f"{100 * s0:.0f} → {100 * s1:.0f}"]
            for k in keys:
                cells.append(f"{mean(start[start['metric'] == k]):.3f} → {mean(end[end['metric'] == k]):.3f}")
            rows.append([m, ds] + cells)
        if not rows:
            return ""
        return ("### Where the mean action went: BC start → end\n\n"
                + md_table(["method", "dataset", "success (%)", "‖μ − μ_b‖² (behaviour gap)",
                            "‖μ − a‖², preferred segments", "‖μ − a‖², rejected segments"], rows)
                + "\n\nMean over seeds, on the 512 fixed diagnostic pairs of each run (per step, summed over the "
                  "action dimensions; the BC start's values are those of the contrastive run's first step). A "
                  "contrastive loss falls both by moving the mean action towards the preferred actions and by "
                  "moving it away from the rejected ones; a growing behaviour gap with a *rising* error on the "
                  "preferred segments means the second dominated.\n")

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
        for metric, lead, tail in (
                ("logit_skewness", "Logit skewness (mean over seeds): ",
                 " (paper: EM more right-skewed, RL more left-skewed)."),
                ("logit_skewness_on_reference",
                 "The same subjects' logits on the base model's samples (the same steps, teacher-forced): ", ".")):
            sk = final_rows(df, metric)
            if not sk.empty:
                vals = sk.groupby("method")["value"].mean()
                out.append(lead + ", ".join(f"`{k}` {fmt('logit_skewness', v)}" for k, v in vals.items()) + tail)
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

    def osem_ranks_table(self, df: pd.DataFrame) -> str:
        """EM on each prompt at the top of the selection's variance ranking (rank 1 = the main run): greedy
        accuracy at the rank runs' step against step 0 (the base model, the same for every prompt)."""
        ranks = {int(RANK_RUN.match(m).group(1)): m for m in set(df["method"]) if RANK_RUN.match(m)}
        if not ranks or "one_shot_em" not in set(df["method"]):
            return ""
        ranks[1] = "one_shot_em"
        step = rank_step(df)
        if step is None:  # rank runs without a greedy arith_test evaluation
            return ""

        def val(method, metric, st, ds="arith_test"):
            v = df[(df["method"] == method) & (df["metric"] == metric) & (df["step"] == st) & (df["dataset"] == ds)]
            return float(v["value"].mean()) if not v.empty else None

        pct = lambda x: "–" if x is None else f"{100 * x:.1f}"  # noqa: E731
        rows, deltas, changes, points = [], [], {}, []
        base = {ds: val("one_shot_em", "acc_greedy", 0, ds) for ds in ("arith_test", "arith_hard")}
        for r in sorted(ranks):
            m = ranks[r]
            a = {ds: val(m, "acc_greedy", step, ds) for ds in base}
            d = {ds: None if a[ds] is None or base[ds] is None else a[ds] - base[ds] for ds in base}
            if d["arith_test"] is not None:
                deltas.append(d["arith_test"])
            p, score = val(m, "selection_accuracy", 0, "prompt"), val(m, "selection_score", 0, "prompt")
            marker = val(m, "selection_p_careful_marker", 0, "prompt")
            a_c, a_q = val(m, "selection_acc_careful", 0, "prompt"), val(m, "selection_acc_quick", 0, "prompt")
            acc_sum = "–" if a_c is None or a_q is None else f"{a_c:.2f} + {a_q:.2f} = {a_c + a_q:.2f}"
            if marker is not None and d["arith_test"] is not None:
                changes[r] = d["arith_test"]
                points.append((str(r), marker, 100 * d["arith_test"]))
            rows.append([str(r), f"`{m}`", "–" if p is None else f"{p:.3f}", "–" if score is None else f"{score:.4f}",
                         "–" if marker is None else f"{marker:.3f}", acc_sum,
                         f"{pct(base['arith_test'])} → {pct(a['arith_test'])}",
                         "–" if d["arith_test"] is None else f"{100 * d['arith_test']:+.1f}",
                         "–" if d["arith_hard"] is None else f"{100 * d['arith_hard']:+.1f}",
                         pct(val(m, "style_share_careful_greedy", step)),
                         pct(val(m, "style_share_careful_greedy_mul", step))])
        if not deltas:
            return ""
        dl = 100 * np.asarray(deltas)
        agree = marker_sign_agreement({"one_shot_em": df}, changes)
        header = ["rank", "run", "selection p", "p(1 − p)", "careful-marker share (base, T_s)",
                  "selection samples right: careful + quick", f"acc. greedy, step 0 → {step} (`arith_test`)",
                  "Δ `arith_test` (pp)", "Δ `arith_hard` (pp)", f"careful share, greedy, step {step}",
                  f"careful share on × problems, greedy, step {step}"]
        col = header.index("selection samples right: careful + quick")
        by_style = any(r[col] != "–" for r in rows)  # tables made before the selection logged per-style accuracy
        if not by_style:
            header, rows = header[:col] + header[col + 1:], [r[:col] + r[col + 1:] for r in rows]
        summary = (f"Over the {len(dl)} prompts: step {step} − step 0 on `arith_test` {dl.mean():+.1f} pp on average "
                   f"(from {dl.min():+.1f} to {dl.max():+.1f}); {int((dl >= 3).sum())} of {len(dl)} reach +3 pp."
                   + (f" The change has the sign of the careful-marker share minus 1/2 on {agree[0]} of {agree[1]} "
                      "prompts." if agree else ""))
        return ("### Which prompt EM gets: the top of the variance ranking\n\n"
                + md_table(header, rows)
                + f"\n\n{summary} A diagnostic, not the paper's protocol: the main run's settings (one seed per rank; "
                  "rank 1 = the main run, mean over its seeds) on each of the highest-ranked prompts of the selection "
                  "(score p(1 − p) of the k graded selection samples, ties in pool order). The top scores lie within "
                  "the sampling noise of k samples of each other, so which of these prompts the paper's rule picks is "
                  "close to chance; the spread over them is the part of EM's result that the choice decides. Step 0 "
                  "is the base model's greedy evaluation, the same for every prompt. The careful-marker share is the "
                  "base model's P(`Steps: `) / (P(`Steps: `) + P(`Quick: `)) as the first words of a completion to "
                  "that prompt at EM's sampling temperature: the one style choice that every rollout of the prompt "
                  "shares, so the one that sharpening pushes towards its majority."
                + (" The next column is the accuracy of the prompt's `careful` and of its `quick` selection samples: "
                   "with success p = c a_c + (1 − c) a_q, a prompt at p = 1/2 has its `careful` share c above 1/2 "
                   "exactly when a_c + a_q < 1." if by_style else "")
                + "\n\n"
                + (self.figure(figs.marker_figure(points, self.fig_dir / "one_shot_em_marker.png", step,
                                                  dpi=self.cfg.dpi),
                               f"EM from each top-ranked prompt: greedy `arith_test` accuracy change from step 0 to "
                               f"{step} (pp) against the base model's careful-marker share on that prompt; label = "
                               "rank, green = gain, red = loss; dashed line: the two markers tied")
                   if points else ""))

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
        drift = self.ppl_drift_table(df, sweep)
        if drift:
            out.append(drift)
        if sweep:
            out.append("### The hyper-parameter sweep (a task that is not reported)\n")
            rows = []
            sw = f[f["method"].isin(sweep)]
            sat = df[(df["step"] == -1) & (df["metric"] == "logit_sat_frac") & df["method"].isin(sweep)]
            for (m, d), g in sorted(sw.groupby(["method", "dataset"])):
                sg = sat[(sat["method"] == m) & (sat["dataset"] == d)]
                rows.append([m, d, cell_text("success", summarize_cell(g, self.st)),
                             cell_text("logit_sat_frac", summarize_cell(sg, self.st)) if not sg.empty else "–"])
            out.append(md_table(["sweep point", "dataset", "success", "share of |logit| > 5"], rows) + "\n\n"
                       "`cpl_a<α>`: CPL at α; `ppl_a<α>_k<r>`: PPL at α with KL weight λ = r·α (r = 1: the regret "
                       "derivation); `piql_scratch` / `piql_bc`: P-IQL with its actor from scratch (the official "
                       "code) / from the BC start. The values used for the reported tasks were fixed before the final run by the "
                       "rule in config/config.yaml (section ppl), applied to an exploratory sweep; this table is "
                       "the workflow's re-run of it, and on another machine single points can move by several "
                       "episodes (floating point in MuJoCo and torch), so a point may now pass or fail the rule "
                       "where it did not then: the setting is not re-chosen from the re-run.\n")
        return "\n".join(out)
