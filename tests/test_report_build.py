"""The report builds from fixture tables, prints exactly the tables' numbers, says "not run" for a
missing table, writes valid PNG figures and keeps reports/<tier>/latest pointing at the newest."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from repro import stats
from repro.report import build
from repro.report.tables import TableError, load_table

FIX = Path(__file__).parent / "fixtures" / "report"
ROOT = Path(__file__).resolve().parents[1]
REPS, CONF, SEED = 400, 0.95, 0


def _build(results: Path, out: Path, **kw) -> Path:
    cfg = build.ReportConfig(tier="tiny", results=str(results), out=str(out), bootstrap_reps=REPS, confidence=CONF,
                             bootstrap_seed=SEED, paper_tables=str(ROOT / "config" / "paper_tables.yaml"), dpi=60, **kw)
    return build.Builder(cfg).build()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports") / "tiny"
    wall = root.parent / "wall.json"
    wall.write_text(json.dumps({"nano": 540.0, "entropy_mechanism": 960.0, "total": 2100.0,
                                "note": "Measured with `time make reproduce`; 41.0 min before the change."}))
    md = _build(FIX, root / "v1", wall_times=str(wall))
    return md.read_text(), root / "v1"


# ------------------------------------------------------------------ parsing helpers
def section(md: str, title: str) -> str:
    """Text of the `## ` section whose heading starts with `title` (up to the next `## `)."""
    return md.split("\n" + title, 1)[1].split("\n## ", 1)[0]


def subsection(sec: str, title: str) -> str:
    """Text of the `### ` subsection whose heading starts with `title`."""
    return sec.split("\n" + title, 1)[1].split("\n### ", 1)[0]


def appendix(md: str, title: str, part: str) -> str:
    """Text of the appendix's `#### part` table of the paper (or nano) section titled `title`."""
    app = md.split("\n## Appendix: wide tables", 1)[1]
    sec = app.split("\n### " + title, 1)[1].split("\n### ", 1)[0]
    return sec.split("\n#### " + part, 1)[1].split("\n#### ", 1)[0]


def md_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every markdown table in `text` as (header, rows)."""
    out, cur = [], None
    for ln in text.splitlines() + [""]:
        if ln.startswith("|"):
            cells = [c.strip() for c in ln.strip()[1:-1].split(" | ")]
            if cur is None:
                cur = (cells, [])
            elif not ln.startswith("|---"):
                cur[1].append(cells)
        elif cur is not None:
            out.append(cur)
            cur = None
    return out


CELL = re.compile(r"^(-?[\d.]+)(?: \[(-?[\d.]+), (-?[\d.]+)\] \(n=(\d+)\))?(?: · paper ([\d.]+))?$")


def expected_cell(values: np.ndarray, metric: str) -> str:
    """Independent recomputation of a printed cell from the seed values."""
    pct = bool(re.match(r"^(val_)?(acc|pass@|maj@|avg@|success|frac_)", metric))

    def f(v):
        return f"{v * 100:.1f}" if pct else (f"{v:.0f}" if abs(v) >= 1e4 else f"{v:.4g}")

    if len(values) < 2:
        return f(float(np.mean(values)))
    lo, hi = stats.stratified_bootstrap_ci(values, "mean", REPS, CONF, SEED)
    return f"{f(float(np.mean(values)))} [{f(lo)}, {f(hi)}] (n={len(values)})"


def expected_headline(df: pd.DataFrame, metric: str, name: str) -> pd.DataFrame:
    """Final rows of the metric; a method without any uses its last evaluated step per (dataset, seed);
    one-shot EM's missing `base` is the step-0 evaluation of the one_shot_em runs."""
    m = df[df.metric == metric]
    parts = [m[m.step == -1]]
    for method in set(m.method) - set(m[m.step == -1].method):
        g = m[m.method == method]
        for (d, seed), h in g.groupby(["dataset", "seed"]):
            if name == "one_shot_em":  # the step nearest to the paper's ~10 steps, the earlier one on ties
                best = min(h.step.unique(), key=lambda st: (abs(st - 10), st))
            else:
                best = h.step.max()
            parts.append(h[h.step == best])
    if name == "one_shot_em" and "base" not in set(m.method):
        parts.append(m[(m.method == "one_shot_em") & (m.step == 0)].assign(method="base"))
    return pd.concat(parts)


def seed_vals(df: pd.DataFrame) -> np.ndarray:
    return df.groupby("seed")["value"].mean().sort_index().to_numpy()


# ------------------------------------------------------------------ tests
def test_outputs_exist_and_latest_points_to_newest(built, tmp_path):
    md, out = built
    assert (out / "report.html").read_text().count("<table>") >= 10
    link = out.parent / "latest"
    assert link.is_symlink() and Path(link.readlink()) == Path("v1")  # relative
    # a newer version takes over "latest"; the old one is left untouched
    root = tmp_path / "tiny"
    shutil.copytree(out, root / "v1", symlinks=True)
    _build(FIX / "none", root / "v2")
    assert (root / "latest").readlink() == Path("v2") and (root / "v1" / "report.md").exists()
    assert (root / "latest" / "report.md").read_text().startswith("# Reproduction report")


def test_every_final_number_equals_the_table(built):
    md, _ = built
    checked = 0
    notes = yaml.safe_load((ROOT / "repro/report/templates/notes.yaml").read_text())["papers"]
    for name in ["nano", "entropy_mechanism", "empo", "one_shot_em", "ppl"]:
        df = pd.read_csv(FIX / f"{name}.csv")
        fin = df[df["step"] == -1]
        if name == "nano":  # the nano section also shows a run's last logged step where it has no final row
            keys = ["method", "model", "dataset", "metric"]
            last = df.groupby(keys)["step"].transform("max")
            no_final = ~df.groupby(keys)["step"].transform(lambda s: (s == -1).any())
            fin = pd.concat([fin, df[no_final & (df["step"] == last)]])
        sec = section(md, "## The nano" if name == "nano" else "## " + notes[name]["title"])
        tables = md_tables(appendix(md, "The nano testbed" if name == "nano" else notes[name]["title"],
                                    "All final numbers"))
        assert tables, name
        header, rows = tables[0]
        metrics = [h.split(" (")[0] for h in header[3:]]
        for r in rows:
            method, model, dataset = r[:3]
            for metric, cell in zip(metrics, r[3:]):
                sel = fin[(fin.method == method) & (fin.model == model) & (fin.dataset == dataset) & (fin.metric == metric)]
                if sel.empty:
                    assert cell == "–"
                    continue
                assert cell == expected_cell(seed_vals(sel), metric), (name, method, dataset, metric)
                checked += 1
        # the headline table: per-dataset cells and the macro average over datasets
        if name == "nano":
            continue
        metric = build.PAPERS[name]["metric"]
        (header, rows), = md_tables(subsection(sec, "### Ours: final"))
        datasets = [h for h in header[1:] if h != "avg"]
        sub = expected_headline(df, metric, name)
        for r in rows:
            g = sub[sub.method == r[0]]
            for d, cell in zip(datasets, r[1:]):
                assert CELL.match(cell), cell
                assert cell == expected_cell(seed_vals(g[g.dataset == d]), metric)
                checked += 1
            if "avg" in header:
                strata = [seed_vals(g[g.dataset == d]) for d in datasets]
                m = np.mean(np.concatenate(strata))
                assert float(r[-1].split()[0]) == pytest.approx(round(m * 100, 1), abs=0.051)
                if min(map(len, strata)) >= 2:
                    lo, hi = stats.stratified_bootstrap_ci(strata, "mean", REPS, CONF, SEED)
                    assert f"[{lo * 100:.1f}, {hi * 100:.1f}]" in r[-1]
                checked += 1
    assert checked > 150


def test_paper_numbers_and_effects_equal_their_sources(built):
    md, _ = built
    published = yaml.safe_load((ROOT / "config" / "paper_tables.yaml").read_text())
    spec = ROOT.parent / "shared" / "spec" / "paper_tables.yaml"
    if spec.exists():  # the project copy carries the spec's figures unchanged
        orig = yaml.safe_load(spec.read_text())
        for k in orig:
            assert published[k]["rows"] == orig[k]["rows"] and published[k].get("columns", []) == orig[k].get("columns", [])
    sec = section(md, "## EMPO")
    (header, rows), = md_tables(appendix(md, "EMPO", "The paper's numbers"))
    for r in rows:
        assert [float(v) for v in r[2:]] == published["empo"]["rows"][r[0]][r[1]]
    # effect table: ours Δ vs base = mean over datasets of (method mean - base mean), paper Δ from its avg column
    fin = pd.read_csv(FIX / "empo.csv").query("step == -1 and metric == 'acc_greedy'")
    base = fin[fin.method == "base"].groupby("dataset")["value"].mean()
    (header, rows), = md_tables(subsection(sec, "### Direction"))
    for r in rows:
        g = fin[fin.method == r[0]].groupby("dataset")["value"].mean()
        assert r[1] == f"{np.mean([g[d] - base[d] for d in base.index]) * 100:+.1f}"
        for col, cell in zip(header[2:-1], r[2:-1]):
            model = col.split()[1].rstrip(":")
            prow = published["empo"]["rows"][model]
            if r[0] in prow:
                assert cell == f"{prow[r[0]][-1] - prow['base'][-1]:+.1f}"
            else:
                assert cell == "–"


def test_provenance_header(built):
    md, _ = built
    prov = md.split("## Provenance", 1)[1].split("\n## ", 1)[0]
    assert "`4ac22c0f`" in prov and "| dirty working tree | no |" in prov and "`cfg1a2b`" in prov
    assert "torch 2.13.0" in prov and "2 CPU cores" in prov
    df = pd.read_csv(FIX / "entropy_mechanism.csv", parse_dates=["started", "finished"])
    runs = df.drop_duplicates(["method", "model", "seed", "config_hash", "started", "finished"])
    total = (runs.finished - runs.started).dt.total_seconds().sum() / 60
    span = (runs.finished.max() - runs.started.min()).total_seconds() / 60
    assert f"| entropy_mechanism | {len(runs)} | {total:.1f} | {span:.1f} |" in prov
    assert "Whole tiny reproduction: 35.0 min, over the 30-minute goal" in prov
    assert "largest stage is `entropy_mechanism` (16.0 min)" in prov
    assert "Measured with `time make reproduce`; 41.0 min before the change." in prov  # the wall-times note


def test_missing_tables_say_not_run(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(FIX / "empo.csv", results / "empo.csv")
    md = _build(results, tmp_path / "out" / "v1").read_text()
    for title in ["## The Entropy Mechanism", "## One-shot Entropy", "## PPL", "## The nano"]:
        section = md.split(title, 1)[1].split("\n## ", 1)[0]
        assert "**not run**" in section, title
    empo = md.split("## EMPO", 1)[1].split("\n## ", 1)[0]
    assert "not run" not in empo and "### Ours" in empo
    # the paper's numbers are still shown for a stage that has not run
    em = md.split("## The Entropy Mechanism", 1)[1].split("\n## ", 1)[0]
    assert "| qwen2.5-7b | grpo | 21.2 |" in em
    # nothing at all: still a report
    md0 = _build(tmp_path / "empty", tmp_path / "out0" / "v1").read_text()
    assert md0.count("**not run**") == 5 and "nothing has run" in md0


def test_figures_are_valid_pngs_with_the_expected_set(built):
    md, out = built
    refs = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", md)
    names = {Path(r).stem for r in refs}
    assert {"entropy_mechanism_entropy", "entropy_mechanism_law", "empo_vs_grpo", "one_shot_em_steps",
            "one_shot_em_temperature", "one_shot_em_ordering", "one_shot_em_skewness",
            "ppl_success_heterogeneous", "ppl_success_homogeneous"} <= names
    from PIL import Image

    for r in refs:
        p = out / r
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(p) as im:
            im.verify()
        with Image.open(p) as im:
            assert im.size[0] > 200 and im.size[1] > 150


def test_bad_table_errors_name_file_line_and_column(tmp_path):
    df = pd.read_csv(FIX / "empo.csv", dtype=str)
    df.loc[3, "value"] = "abc"
    bad = tmp_path / "empo.csv"
    df.to_csv(bad, index=False)
    with pytest.raises(TableError, match=r"empo\.csv:5: column 'value'"):
        load_table(bad)
    df.drop(columns=["metric"]).to_csv(bad, index=False)
    with pytest.raises(TableError, match=r"missing column\(s\) \['metric'\]"):
        load_table(bad)


def test_temperature_parsed_from_method_names():
    from repro.report.figures import method_temperature

    assert method_temperature("em_ts0.3") == 0.3
    assert method_temperature("one_shot_em_t0.5") == 0.5
    assert method_temperature("em_temp0p9") == 0.9
    assert method_temperature("one_shot_em") is None and method_temperature("em_then_rl") is None


def test_seed_statistics_table_equals_recomputation(built):
    md, _ = built
    notes = yaml.safe_load((ROOT / "repro/report/templates/notes.yaml").read_text())["papers"]
    checked = 0
    for name in ["entropy_mechanism", "empo", "ppl"]:
        fin = pd.read_csv(FIX / f"{name}.csv").query("step == -1")
        (header, rows), = md_tables(appendix(md, notes[name]["title"], "Seed statistics"))
        assert header[:7] == ["method", "model", "dataset", "metric", "seeds", "mean", "IQM"]
        for method, model, dataset, metric_label, n, mean, iqm, ci, iqm_ci in rows:
            metric = metric_label.split(" (")[0]
            g = fin[(fin.method == method) & (fin.model == model) & (fin.metric == metric)]
            if dataset.startswith("all "):  # pooled over datasets, bootstrap stratified by dataset
                strata = [seed_vals(g[g.dataset == d]) for d in sorted(g.dataset.unique())]
            else:
                strata = [seed_vals(g[g.dataset == dataset])]
            pooled = np.concatenate(strata)
            assert int(n) == min(map(len, strata))
            assert mean == f"{pooled.mean() * 100:.1f}"
            assert iqm == f"{stats.iqm(strata) * 100:.1f}"
            lo, hi = stats.stratified_bootstrap_ci(strata, "mean", REPS, CONF, SEED)
            qlo, qhi = stats.stratified_bootstrap_ci(strata, "iqm", REPS, CONF, SEED)
            assert ci == f"[{lo * 100:.1f}, {hi * 100:.1f}]" and iqm_ci == f"[{qlo * 100:.1f}, {qhi * 100:.1f}]"
            checked += 1
    assert checked >= 40


def test_observations_quote_the_table(built):
    md, _ = built
    fin = pd.read_csv(FIX / "entropy_mechanism.csv").query("step == -1")
    for method in ["grpo", "kl_cov"]:
        h0 = fin.query("method == @method and metric == 'entropy_initial'")["value"].mean()
        h1 = fin.query("method == @method and metric == 'entropy_final'")["value"].mean()
        assert f"`{method}`: entropy {h0:.4g} → {h1:.4g} nats/token (final / initial = {h1 / h0:.2f}" in md
    law = fin.query("method == 'grpo' and metric.str.startswith('law_')").set_index("metric")["value"]
    assert f"a = {law['law_a']:.4g}, b = {law['law_b']:.4g}, ceiling = {law['law_ceiling']:.4g}" in md
    ppl = pd.read_csv(FIX / "ppl.csv").query("step == -1 and metric == 'success'")
    het = ppl[ppl.dataset.str.endswith("/heterogeneous")].groupby("method")["value"].mean()
    assert f"`ppl` {het['ppl'] * 100:.1f}" in md and f"PPL ≥ CPL: {'yes' if het['ppl'] >= het['cpl'] else 'no'}" in md


def test_wall_times_from_snakemake_benchmark_files(tmp_path):
    from repro.report.tables import read_wall_times

    bench = tmp_path / "benchmarks"
    bench.mkdir()
    header = "s\th:m:s\tmax_rss\n"
    (bench / "ppl.seed0.tsv").write_text(header + "60.5\t0:01:00\t100\n")
    (bench / "ppl.seed1.tsv").write_text(header + "39.5\t0:00:39\t100\n")
    (bench / "nano.tsv").write_text(header + "600\t0:10:00\t100\n")
    assert read_wall_times(bench) == {"nano": 600.0, "ppl": 100.0}
    bad = tmp_path / "w.yaml"
    bad.write_text("nano: soon\n")
    from repro.report.tables import wall_times_note

    noted = tmp_path / "n.yaml"
    noted.write_text("total: 60\nnote: before 90 s\n")
    assert read_wall_times(noted) == {"total": 60.0} and wall_times_note(noted) == "before 90 s"
    assert wall_times_note(bench) is None
    with pytest.raises(TableError, match="nano"):
        read_wall_times(bad)


def test_degrades_on_empty_tables_nan_values_and_missing_provenance(tmp_path):
    res = tmp_path / "res"
    res.mkdir()
    (res / "empo.csv").write_text((FIX / "empo.csv").read_text().splitlines()[0] + "\n")  # header only
    df = pd.read_csv(FIX / "entropy_mechanism.csv")
    df.loc[(df.metric == "acc_greedy") & (df.method == "kl_cov"), "value"] = np.nan  # a metric that failed
    df.loc[:, ["started", "finished"]] = ""  # no timestamps
    df.to_csv(res / "entropy_mechanism.csv", index=False)
    md = _build(res, tmp_path / "out" / "v1").read_text()
    assert "**no rows** — `empo.csv`" in md
    em = section(md, "## The Entropy Mechanism")
    (header, rows), = md_tables(subsection(em, "### Ours"))
    assert ["kl_cov", "–", "–", "–"] in rows
    (header, rows), = md_tables(subsection(em, "### Direction"))
    assert "kl_cov" not in [r[0] for r in rows] and not re.search(r"\bnan\b", md, re.I)
    assert "| entropy_mechanism | ? | no timestamps | – |" in md


def test_overall_wall_time_from_all_runs(built):
    md, _ = built
    frames = [pd.read_csv(FIX / f"{t}.csv", parse_dates=["started", "finished"]) for t in
              ("nano", "entropy_mechanism", "empo", "one_shot_em", "ppl")]
    allrows = pd.concat(frames)
    span = (allrows.finished.max() - allrows.started.min()).total_seconds() / 60
    assert f"**{span:.1f} min**" in md
    assert ("within" if span <= 30 else "over") + " the 30-minute goal" in md


def test_empo_gap_to_grpo_quotes_the_table(built):
    md, _ = built
    fin = pd.read_csv(FIX / "empo.csv").query("step == -1 and metric == 'acc_greedy'")
    m = fin.groupby(["method", "dataset"])["value"].mean()
    gap = np.mean([m[("empo", d)] - m[("grpo", d)] for d in ("arith_hard", "arith_test")]) * 100
    assert f"`empo` − `grpo` (labels): {gap:+.1f} points" in md
    assert "(paper: qwen2.5-math-1.5b -0.2, qwen2.5-math-7b -0.1)" in md


def test_paper_tier_cells_show_the_published_number(tmp_path):
    res = tmp_path / "res"
    res.mkdir()
    rows = [dict(paper="empo", method=meth, model="Qwen/Qwen2.5-Math-7B", dataset=d, seed=s, step=-1,
                 metric="acc_greedy", value=v + 0.01 * s, commit="abc", dirty="false", config_hash="h",
                 versions="", hardware="1x GPU", started="", finished="")
            for meth, vals in (("base", {"math500": 0.70, "amc23": 0.45}), ("empo", {"math500": 0.81, "amc23": 0.64}))
            for d, v in vals.items() for s in (0, 1)]
    pd.DataFrame(rows).to_csv(res / "empo.csv", index=False)
    cfg = build.ReportConfig(tier="paper", results=str(res), out=str(tmp_path / "out" / "v1"), bootstrap_reps=REPS,
                             paper_tables=str(ROOT / "config" / "paper_tables.yaml"), dpi=50)
    md = build.Builder(cfg).build().read_text()
    (header, table), = md_tables(subsection(section(md, "## EMPO"), "### Ours: final"))
    cells = dict(zip(header, next(r for r in table if r[0] == "empo")))
    assert cells["math500"].endswith("· paper 81.4") and cells["amc23"].endswith("· paper 65.0")
    assert "Tier `paper`" in md


def test_claims_table_opens_the_report_and_main_tables_are_lean(built):
    """Issue 16: the claims table (all four papers, a verdict per claim) within the first 60 lines; no table
    of the main body (everything before the appendix) wider than 8 columns."""
    md, _ = built
    lines = md.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("## Claims at a glance"))
    (header, rows), = md_tables("\n".join(lines[start:]).split("\n## ", 1)[0])
    assert start + 4 + len(rows) < 60 and "verdict" in header
    assert {r[0] for r in rows} == {"Entropy Mechanism", "EMPO", "One-shot EM", "PPL"}
    assert all(r[header.index("verdict")].strip("*") in ("reproduced", "not reproduced", "inconclusive", "not run")
               for r in rows)
    body = md.split("\n## Appendix: wide tables", 1)[0]
    widths = [len(h) for h, _ in md_tables(body)]
    assert widths and max(widths) <= 8, widths


def test_known_deviations_are_named_in_readme_and_report():
    readme = (ROOT / "README.md").read_text()
    notes = (ROOT / "repro/report/templates/notes.yaml").read_text()
    for text in (readme, notes):
        assert "string" in text and "math-verify" in text  # EMPO clustering
        assert "repetition_penalty" in text and "1.15" in text  # one-shot EM rollouts
        assert "pad id" in text  # one-shot EM positions
        assert "mini-batch" in text and "micro-batch" in text  # Clip-Cov / KL-Cov selection


def test_verify_records_the_spread_and_the_report_shows_it(tmp_path):
    """`make verify` records each metric's difference; the provenance section prints the recorded spread."""
    import shutil

    from repro import verify

    results = tmp_path / "results" / "tiny" / "latest"
    shutil.copytree(FIX, results)
    keys = dict(paper="nano", model="nano", seed=0)
    committed = pd.DataFrame([dict(keys, method="base", dataset="arith_test", step=-1, metric="acc_greedy", value=0.50,
                                   commit="abc123"),
                              dict(keys, method="sft", dataset="arith_sft", step=-1, metric="sft_loss_final",
                                   value=0.100, commit="abc123"),
                              dict(keys, method="sft", dataset="arith_sft", step=-1, metric="train_seconds",
                                   value=300.0, commit="abc123")])
    fresh = committed.assign(value=[0.52, 0.105, 250.0])
    diff = verify.compare(committed, fresh)
    assert diff.set_index("metric")["diff"].round(6).to_dict() == {"acc_greedy": 0.02, "sft_loss_final": 0.005,
                                                                   "train_seconds": -50.0}
    run = tmp_path / "fresh"
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "metrics.json").write_text(json.dumps({"provenance": {"commit": "f" * 40, "dirty": False},
                                                           "rows": []}))
    path = verify.record(diff, results.parent, committed, run, threads=1)
    assert path.parent == results.parent / "verify"
    md = _build(results, tmp_path / "reports" / "v1").read_text()
    prov = md.split("## Provenance", 1)[1].split("\n## ", 1)[0]
    # timing rows are shown, not compared; the row names the committed table it was compared with
    assert "| 1 | `ffffffffffff` | `abc123` | 0 / 2 | 0.02 | +2.0 | +5.0% |" in prov
    assert "compared with the `nano` table of commit" in prov


def test_em_prompt_rank_runs_get_their_own_table(tmp_path):
    """em_rank<r> runs: a table of step-10 greedy accuracy against the main run's step 0 (rank 1 = the main run),
    the selection numbers from their "prompt" rows, and no row in the paper's main tables."""
    res = tmp_path / "res"
    shutil.copytree(FIX, res)
    em = pd.read_csv(res / "one_shot_em.csv")
    tmpl = em.iloc[0].to_dict()
    add = []
    for r, (test, hard, p, marker) in {2: (0.70, 0.30, 0.46875, 0.6), 3: (0.50, 0.20, 0.53125, 0.3)}.items():
        for ds, step, metric, v in [("arith_test", 10, "acc_greedy", test), ("arith_hard", 10, "acc_greedy", hard),
                                    ("prompt", 0, "selection_accuracy", p), ("prompt", 0, "selection_score", p * (1 - p)),
                                    ("prompt", 0, "selection_rank", r), ("prompt", 0, "selection_p_careful_marker", marker)]:
            add.append({**tmpl, "method": f"em_rank{r}", "seed": 0, "dataset": ds, "step": step, "metric": metric,
                        "value": v})
    for metric, v in (("selection_acc_careful", 0.8), ("selection_acc_quick", 0.1)):  # rank 2 only
        add.append({**tmpl, "method": "em_rank2", "seed": 0, "dataset": "prompt", "step": 0, "metric": metric, "value": v})
    pd.concat([em, pd.DataFrame(add)]).to_csv(res / "one_shot_em.csv", index=False)
    md = _build(res, tmp_path / "out" / "v1").read_text()
    sec = section(md, "## One-shot Entropy Minimization")
    assert "em_rank" not in subsection(sec, "### Ours: final")
    (head, rows), = md_tables(subsection(sec, "### Which prompt EM gets"))
    main = em[(em["method"] == "one_shot_em") & (em["metric"] == "acc_greedy")]
    base = {ds: main[(main["dataset"] == ds) & (main["step"] == 0)]["value"].mean() for ds in ("arith_test", "arith_hard")}
    top = main[(main["dataset"] == "arith_test") & (main["step"] == 10)]["value"].mean()
    assert [r[0] for r in rows] == ["1", "2", "3"] and rows[0][1] == "`one_shot_em`"
    assert rows[0][7] == f"{100 * (top - base['arith_test']):+.1f}"
    assert rows[1][2:5] == ["0.469", f"{0.46875 * 0.53125:.4f}", "0.600"] and rows[0][4] == "–"
    assert rows[1][5] == "0.80 + 0.10 = 0.90" and rows[0][5] == rows[2][5] == "–"  # a_c + a_q where recorded
    assert rows[1][6] == f"{100 * base['arith_test']:.1f} → 70.0"
    assert rows[1][7] == f"{100 * (0.70 - base['arith_test']):+.1f}" and rows[2][8] == f"{100 * (0.20 - base['arith_hard']):+.1f}"
    # rank 2 gains with the careful marker ahead (0.6), rank 3 loses with it behind (0.3); rank 1 records no share
    assert 0.70 > base["arith_test"] > 0.50
    assert "sign of the careful-marker share minus 1/2 on 2 of 2 prompts" in sec
    # the two prompts with a recorded share are drawn (rank 1 has none); the PNG sits next to the report
    assert "figures/one_shot_em_marker.png" in sec
    png = tmp_path / "out" / "v1" / "figures" / "one_shot_em_marker.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    deltas = 100 * (np.array([top, 0.70, 0.50]) - base["arith_test"])
    assert f"{deltas.mean():+.1f} pp on average" in sec and f"{int((deltas >= 3).sum())} of 3 reach +3 pp" in sec
    assert "a_c + a_q < 1" in sec
    # tables made before the selection logged per-style accuracy: no column of dashes, no sentence about it
    pd.concat([em, pd.DataFrame([a for a in add if not a["metric"].startswith("selection_acc_")])]).to_csv(
        res / "one_shot_em.csv", index=False)
    sec = section(_build(res, tmp_path / "out" / "v2").read_text(), "## One-shot Entropy Minimization")
    (head, rows), = md_tables(subsection(sec, "### Which prompt EM gets"))
    assert "selection samples right: careful + quick" not in head and len(head) == len(rows[0]) == 10
    assert rows[1][5] == f"{100 * base['arith_test']:.1f} → 70.0" and "a_c + a_q < 1" not in sec


def test_config_source_reads_the_tables_commit_not_the_working_file(tmp_path):
    """A rebuilt report hashes the config as committed with its tables, even after the file changed."""
    import hashlib
    import subprocess

    from repro.report.provenance_section import _config_named, config_source

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("seed: 0\n")
    subprocess.run(git + ["add", "config.yaml"], check=True)
    subprocess.run(git + ["commit", "-qm", "c"], check=True)
    commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    cfg.write_text("seed: 1\n")  # the config changed after the run
    data, where = config_source(cfg, commit)
    assert data == b"seed: 0\n" and where == f"at `{commit[:7]}`"
    assert hashlib.sha256(b"seed: 0\n").hexdigest()[:12] in _config_named(cfg, commit)
    assert config_source(cfg, "0" * 40) == (b"seed: 1\n", "working tree")  # a commit git does not have
    assert config_source(cfg, None) == (b"seed: 1\n", "working tree")
    assert config_source(tmp_path / "absent.yaml", None) == (None, "missing")
    (tmp_path / "later.yaml").write_text("seed: 2\n")  # added after the tables' commit: not what the run used
    assert config_source(tmp_path / "later.yaml", commit) == (None, f"not in `{commit[:7]}`")
    assert "(missing)" in _config_named(tmp_path / "absent.yaml", None)
