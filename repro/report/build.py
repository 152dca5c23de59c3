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

import html
import string
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from repro.cli import parse_dataclass
from repro.io import atomic_symlink, atomic_write_text
from repro.report.format import cell_text, fmt, fmt_delta, is_percent, label_of, md_table
from repro.report.papers import LLM_PAPERS, PAPERS, Paper
from repro.report.per_paper import PaperFindings
from repro.report.provenance_section import ProvenanceSection
from repro.report.tables import (
    TABLES,
    StatsSettings,
    final_or_last,
    final_rows,
    headline_rows,
    load_results,
    ppl_tasks_note,
    summarize_cell,
    summarize_macro,
    without_ranks,
    without_sweep,
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


# ---------------------------------------------------------------- sections
class Builder(PaperFindings, ProvenanceSection):
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
        if name == "ppl":
            fields["tasks_note"] = ppl_tasks_note(self.tables.get(name, df),
                                                  self.notes.get("ppl_tasks_why", {}).get(self.cfg.tier, ""))
        tier_note = self.notes["short"].get(self.cfg.tier, f"Tier `{self.cfg.tier}`.")
        text = string.Formatter().vformat(n.get("differs", ""), (), fields)
        return (f"**What differs from the paper.** {text} {tier_note}\n\n"
                f"Seeds per method: {fields['seeds']}.\n")

    # -- per-paper extras: claims checked on our numbers
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
        if name == "one_shot_em":  # the prompt-sensitivity runs (their own table below) are not the paper's protocol
            df = without_ranks(df)
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
            lines.append(self.osem_ranks_table(full))
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
                "when it contains the threshold. The \"does not end below its BC start\" rows are checks for harm "
                "(issue 14's rule): `reproduced` unless the whole CI lies below 0, so a CI across 0 reads \"no drop "
                "shown\", not \"a gain\", and the row says so. `n` = runs (seeds, or seeds x tasks), a single "
                "run gives a point estimate. LLM effects are on `arith_test` (greedy), PPL effects on the "
                "heterogeneous datasets unless the claim names the homogeneous ones.\n\n"
                + markdown(verdicts, titles))

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
