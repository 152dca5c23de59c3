"""Reading the spine's long-format result tables and summarising them across seeds.

A table is ``results/<tier>/<version>/<name>.csv`` with one row per number:
``paper, method, model, dataset, seed, step, metric, value`` plus the provenance columns
``commit, dirty, config_hash, versions, hardware, started, finished`` (step -1 = final).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from repro import results, stats

TABLES = ("nano", "entropy_mechanism", "empo", "one_shot_em", "ppl")
KEY_COLUMNS = ("paper", "method", "model", "dataset", "seed", "step", "metric", "value")
PROVENANCE_COLUMNS = ("commit", "dirty", "config_hash", "versions", "hardware", "started", "finished")


class TableError(ValueError):
    """A result table is malformed; the message names the file, line and column."""


def load_table(path: str | Path) -> pd.DataFrame:
    """Read and validate one long-format table.

    Returns a DataFrame with ``seed``/``step`` as int, ``value`` as float and ``started``/``finished``
    as UTC timestamps (NaT where absent). Raises TableError naming file, line and column on bad data.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise TableError(f"{path}: cannot be read as CSV: {e}") from e
    missing = [c for c in KEY_COLUMNS if c not in df.columns]
    if missing:
        raise TableError(f"{path}: missing column(s) {missing}; header is {list(df.columns)}")
    for c in PROVENANCE_COLUMNS:
        if c not in df.columns:
            df[c] = ""
    try:
        side = results.read_versions(path)
    except results.ResultError as e:
        raise TableError(str(e)) from None
    if side:  # the versions column holds keys into <table>.versions.json: expand them to JSON
        as_json = {k: json.dumps(v, sort_keys=True) for k, v in side.items()}  # once per key, not per row
        df["versions"] = [as_json.get(k, k) for k in df["versions"]]
    out = df.copy()
    for col, conv in (("seed", int), ("step", int), ("value", float)):
        vals = []
        for i, raw in enumerate(df[col].tolist()):
            if col == "seed" and raw.strip() in ("", "None", "null"):
                vals.append(-1)  # a run without a seed (e.g. a deterministic evaluation)
                continue
            if col == "value" and raw.strip() in ("", "None", "null"):
                vals.append(float("nan"))  # a metric that could not be computed: printed as "–"
                continue
            try:
                vals.append(conv(float(raw)) if conv is int else conv(raw))
            except (TypeError, ValueError):
                # line 1 is the header
                raise TableError(f"{path}:{i + 2}: column {col!r} has non-numeric value {raw!r}") from None
        out[col] = vals
    for col in ("started", "finished"):
        out[col] = pd.to_datetime(df[col].replace("", None), utc=True, errors="coerce", format="ISO8601")
    out["dirty"] = df["dirty"].str.lower().isin(["true", "1", "yes"])
    for col in ("paper", "method", "model", "dataset", "metric"):
        bad = [i for i, v in enumerate(df[col].tolist()) if v == ""]
        if bad:
            raise TableError(f"{path}:{bad[0] + 2}: column {col!r} is empty")
    return out


def load_results(results_dir: str | Path, names=TABLES) -> dict[str, pd.DataFrame | None]:
    """Load every known table from ``results_dir``; a missing table maps to None ("not run")."""
    results_dir = Path(results_dir)
    out: dict[str, pd.DataFrame | None] = {}
    for name in names:
        p = results_dir / f"{name}.csv"
        out[name] = load_table(p) if p.exists() else None
    return out


@dataclass(frozen=True)
class StatsSettings:
    """How seed statistics are computed (from the `report` config section)."""

    reps: int = 2000  # bootstrap replicates
    confidence: float = 0.95  # CI level
    seed: int = 0  # bootstrap seed


def final_rows(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows of one metric at step -1 (final / not applicable)."""
    return df[(df["metric"] == metric) & (df["step"] == -1)]


def headline_rows(df: pd.DataFrame, metric: str, baseline: str | None = None,
                  baseline_from_step0: tuple[str, ...] = (), prefer_step: int | None = None
                  ) -> tuple[pd.DataFrame, list[str]]:
    """The rows of ``metric`` the headline tables use, all relabelled step -1, and notes on where they came from.

    * final rows (step -1) where a method has them;
    * otherwise the method's evaluated step nearest to ``prefer_step`` (the earlier one on a tie), or
      its last evaluated step when ``prefer_step`` is None, per (model, dataset, seed) (e.g. one-shot
      EM runs, which evaluate at checkpoints only);
    * when ``baseline`` has no rows, the step-0 evaluation of the first method of
      ``baseline_from_step0`` that has one (the model before any training), relabelled ``baseline``.
    """
    keys = ["method", "model", "dataset", "seed"]
    m = df[df["metric"] == metric]
    fin = m[m["step"] == -1]
    rest = m[(m["step"] >= 0) & ~m["method"].isin(set(fin["method"]))]
    if prefer_step is None:
        last = rest[rest["step"] == rest.groupby(keys)["step"].transform("max")]
        what = "last evaluated step"
    else:
        dist = (rest["step"] - prefer_step).abs() * 2 + (rest["step"] > prefer_step)  # ties -> earlier step
        last = rest[dist == dist.groupby([rest[k] for k in keys]).transform("min")]
        what = f"evaluated step nearest to step {prefer_step}"
    by_steps: dict[str, list[str]] = {}
    for method, g in sorted(last.groupby("method")):
        by_steps.setdefault(", ".join(map(str, sorted(set(g["step"])))), []).append(f"`{method}`")
    notes = [f"{', '.join(ms)} {'has' if len(ms) == 1 else 'have'} no final evaluation: the {what} is shown "
             f"(step {steps})" for steps, ms in by_steps.items()]
    out = pd.concat([fin, last.assign(step=-1)], ignore_index=True)
    if baseline and baseline not in set(out["method"]):
        for src in baseline_from_step0:
            s0 = m[(m["step"] == 0) & (m["method"] == src)]
            if not s0.empty:
                out = pd.concat([out, s0.assign(step=-1, method=baseline)], ignore_index=True)
                notes.append(f"`{baseline}` = the step-0 evaluation of the `{src}` runs (the model before training)")
                break
    return out, notes


def seed_values(df: pd.DataFrame) -> np.ndarray:
    """Values ordered by seed; one value per seed (duplicates of a seed are averaged)."""
    finite = df[np.isfinite(df["value"].to_numpy(dtype=float))]  # a NaN value (a failed metric) is "no value"
    g = finite.groupby("seed")["value"].mean().sort_index()
    return g.to_numpy(dtype=float)


def summarize_cell(df: pd.DataFrame, st: StatsSettings) -> stats.Summary | None:
    """Seed summary of one (method, model, dataset, metric) cell of final rows."""
    vals = seed_values(df)
    if vals.size == 0:
        return None
    return stats.summarize(vals, st.reps, st.confidence, st.seed)


def summarize_macro(df: pd.DataFrame, datasets: list[str], st: StatsSettings) -> stats.Summary | None:
    """Seed summary pooled over datasets (tasks): stratified bootstrap over seeds within datasets.

    The mean equals the macro average over datasets when every dataset has the same seeds.
    """
    strata = [seed_values(df[df["dataset"] == d]) for d in datasets]
    strata = [s for s in strata if s.size]
    if len(strata) != len(datasets) or not strata:
        return None
    return stats.summarize(strata, st.reps, st.confidence, st.seed)


# ---------------------------------------------------------------- provenance
def _unique(series: pd.Series) -> list[str]:
    vals = [str(v) for v in series.tolist() if str(v) not in ("", "nan", "NaT", "None")]
    return sorted(dict.fromkeys(vals))


def provenance(tables: dict[str, pd.DataFrame | None]) -> dict:
    """Commit(s), dirty flag, config hashes, versions, hardware and wall time of each stage."""
    present = {k: v for k, v in tables.items() if v is not None}
    if not present:
        return {}
    allrows = pd.concat(present.values(), ignore_index=True)
    versions: dict[str, list[str]] = {}
    for raw in _unique(allrows["versions"]):
        try:
            parsed = json.loads(raw)
        except (json.JSONDecodeError, TypeError):
            parsed = None
        if isinstance(parsed, dict):
            for k, v in parsed.items():
                versions.setdefault(str(k), [])
                if str(v) not in versions[str(k)]:
                    versions[str(k)].append(str(v))
        else:
            versions.setdefault("(raw)", []).append(raw)
    stages = {}
    for name, df in present.items():
        # one run = one metrics.json: its rows share method, model, seed, config hash and timestamps
        runs = df.drop_duplicates(["method", "model", "seed", "config_hash", "started", "finished"])
        runs = runs[["started", "finished"]].dropna()
        if runs.empty:
            stages[name] = None
            continue
        dur = (runs["finished"] - runs["started"]).dt.total_seconds()
        stages[name] = {
            "runs": int(len(runs)),
            "run_seconds": float(dur.sum()),
            "span_seconds": float((runs["finished"].max() - runs["started"].min()).total_seconds()),
            "first_start": runs["started"].min().isoformat(),
            "last_finish": runs["finished"].max().isoformat(),
        }
    timed = allrows.dropna(subset=["started", "finished"])
    overall = None
    if not timed.empty:
        overall = {"first_start": timed["started"].min().isoformat(), "last_finish": timed["finished"].max().isoformat(),
                   "span_seconds": float((timed["finished"].max() - timed["started"].min()).total_seconds())}
    return {
        "overall": overall,
        "commits": _unique(allrows["commit"]),
        "dirty": bool(allrows["dirty"].any()),
        "config_hashes": _unique(allrows["config_hash"]),
        "versions": versions,
        "hardware": _unique(allrows["hardware"]),
        "stages": stages,
    }


def read_wall_times(path: str | Path) -> dict[str, float]:
    """Wall times in seconds per stage from a JSON/YAML mapping, or a directory of Snakemake
    ``benchmark:`` TSV files (column ``s``; one file per job, summed per file-name stem prefix
    before the first '.'). A key ``total`` (mapping only) is the whole reproduction's wall time; a key ``note``
    (text, mapping only) is left out here and read by :func:`wall_times_note`."""
    import yaml

    path = Path(path)
    if path.is_dir():
        out: dict[str, float] = {}
        for f in sorted(path.rglob("*.tsv")):
            bench = pd.read_csv(f, sep="\t")
            if "s" not in bench.columns:
                raise TableError(f"{f}: Snakemake benchmark file without an 's' column")
            stage = f.name.split(".")[0]
            out[stage] = out.get(stage, 0.0) + float(bench["s"].iloc[-1])
        return out
    if not path.exists():
        raise FileNotFoundError(f"--wall-times: {path} does not exist")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise TableError(f"{path}: expected a mapping stage -> seconds, got {type(data).__name__}")
    out = {}
    for k, v in data.items():
        if k == "note":
            continue
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            raise TableError(f"{path}: wall time of {k!r} is not a number: {v!r}") from None
    return out


def wall_times_note(path: str | Path) -> str | None:
    """The ``note`` of a wall-times mapping (how the time was measured, a before/after comparison), or None."""
    import yaml

    path = Path(path)
    if path.is_dir() or not path.exists():
        return None
    data = yaml.safe_load(path.read_text())
    note = data.get("note") if isinstance(data, dict) else None
    if note is not None and not isinstance(note, str):
        raise TableError(f"{path}: 'note' must be text, got {type(note).__name__}")
    return note


SWEEP_POINT = re.compile(r"^(cpl|ppl)_a[0-9.e-]+(_k[0-9.e-]+)?$|^piql_(scratch|bc)$")


RANK_RUN = re.compile(r"^em_rank(\d+)$")  # one-shot EM's prompt-sensitivity runs (the prompt ranked r)


def law_pairs(df: pd.DataFrame, method: str, score_metric: str = "val_acc", k: int | None = None) -> dict:
    """{seed: (steps, H, R)} of ``method``'s entropy-law points from the table's per-step rows, in step order: each
    ``score_metric`` row with the entropy of its rollout, paired as fit_law pairs them
    (methods.entropy_mechanism.law.pair_with_rollout_entropy). ``k`` steps per rollout defaults to the table's
    ``law_steps_per_rollout`` row, and to 1 (the score at v with the entropy at v + 1, fit_law's pairing before that
    row existed) for older tables."""
    from methods.entropy_mechanism.law import pair_with_rollout_entropy

    if k is None:
        rows = df[df["metric"] == "law_steps_per_rollout"]["value"]
        k = int(round(float(rows.iloc[0]))) if len(rows) else 1
    r = df[(df["method"] == method) & (df["step"] >= 0)]
    out = {}
    for seed, v in r[r["metric"] == score_metric].groupby("seed"):
        e = r[(r["metric"] == "entropy") & (r["seed"] == seed)]
        if e.empty:
            continue
        v = v.groupby("step")["value"].mean()  # one score per step (a single validation split)
        h, sc, steps = pair_with_rollout_entropy(dict(zip(e["step"].astype(int), e["value"])),
                                                 dict(zip(v.index.astype(int), v.to_numpy())), k)
        out[seed] = (np.asarray(steps), np.asarray(h), np.asarray(sc))
    return out


def rank_step(df: pd.DataFrame) -> int | None:
    """The step at which the prompt-sensitivity runs are compared with step 0: the last greedy arith_test evaluation
    of the em_rank runs (config one_shot_em.ranks.steps); None without rank runs."""
    acc = df[(df["metric"] == "acc_greedy") & (df["dataset"] == "arith_test") & df["method"].str.match(RANK_RUN)]
    return None if acc.empty else int(acc["step"].max())


def without_ranks(df: pd.DataFrame) -> pd.DataFrame:
    """One-shot EM rows without the prompt-sensitivity runs (their own table; not the paper's protocol)."""
    return df[~df["method"].str.match(RANK_RUN)]


def without_sweep(df: pd.DataFrame) -> pd.DataFrame:
    """PPL rows without the hyper-parameter sweep: its points and every row of the sweep's datasets."""
    sweep = df["method"].str.match(SWEEP_POINT)
    sweep_sets = set(df.loc[sweep, "dataset"])
    return df[~sweep & ~df["dataset"].isin(sweep_sets)]


def ppl_tasks_note(full: pd.DataFrame, why: str = "") -> str:
    """Which of the paper's six MetaWorld tasks a `ppl` table reports, which one only tunes hyper-parameters (the
    sweep) and which are not run, plus ``why`` (the tier's reason) when some are missing."""
    from benchmarks.metaworld.envs import TASKS

    task_of = lambda sets: sorted({str(d).split("/")[0] for d in sets})  # noqa: E731  (dataset = <task>/<kind>)
    reported = task_of(without_sweep(full)["dataset"].unique())
    sweep = [t for t in task_of(full.loc[full["method"].str.match(SWEEP_POINT), "dataset"].unique())
             if t not in reported]
    missing = [t for t in TASKS if t not in reported and t not in sweep]
    note = f"{len(reported)} of the paper's {len(TASKS)} tasks reported ({', '.join(reported)})"
    if sweep:
        note += f", {', '.join(sweep)} for the hyper-parameter sweep only"
    if missing:
        note += f"; not run: {', '.join(missing)}" + (f" ({why})" if why else "")
    return note


def final_or_last(df: pd.DataFrame) -> pd.DataFrame:
    """Final rows (step -1), plus, for a (method, model, dataset, metric) with no final row, its rows
    at the last logged step relabelled as final (e.g. the nano SFT summary logged at its last step)."""
    keys = ["method", "model", "dataset", "metric"]
    fin = df[df["step"] == -1]
    have = set(map(tuple, fin[keys].to_numpy().tolist()))
    rest = df[(df["step"] >= 0) & ~df[keys].apply(tuple, axis=1).isin(have)]
    last = rest[rest["step"] == rest.groupby(keys)["step"].transform("max")].assign(step=-1)
    return pd.concat([fin, last], ignore_index=True)
