"""Re-run the nano stage from scratch and print each metric's difference from the committed table.

    make verify                                   # = python -m repro.verify --config config/config.yaml

The same three commands as the workflow (benchmarks/arith/experiments.py) write to ``work/verify-<tier>/``
(never touching ``work/<tier>``), then every final metric of the fresh run is compared with
``results/<tier>/latest/nano.csv``. On the machine and thread count that made the committed table the numbers
are identical; on another CPU floating point differs (measured: greedy accuracy moved by 0.2 pp, the SFT loss
by 5%), and this prints by how much. Also written to ``work/verify-<tier>/diff.csv`` and, with ``--record``
(the default of ``make verify``), to ``results/<tier>/verify/<UTC time>.csv`` with the machine's CPU model, the
thread count and the commit, where the report's provenance section shows every recorded spread.
"""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

# timing and size rows differ by construction between runs: shown, not counted as differences
NOT_COMPARED = ("train_seconds", "tokens_per_s", "gen_tokens_per_s")


@dataclass
class VerifyArgs:
    """Re-run the nano stage of a tier from scratch and diff its metrics against the committed table."""

    config: str = "config/config.yaml"  # tier config
    results: str | None = None  # committed table directory (default results/<tier>/latest)
    out: str | None = None  # scratch directory (default work/verify-<tier>)
    keep: bool = False  # reuse an earlier scratch run instead of re-running
    record: bool = False  # also write the comparison to results/<tier>/verify/<UTC time>.csv (shown by the report)


def record(diff: pd.DataFrame, results_dir: Path, committed: pd.DataFrame, fresh_dir: Path,
           threads: int = 1) -> Path:
    """Write ``diff`` with the machine, thread count, the fresh run's commit and the committed table's under
    ``results_dir/verify/``; returns the file."""
    from repro.provenance import cpu_model, hardware, utc_now
    from repro.results import read_run

    prov = read_run(fresh_dir / "eval" / "metrics.json")["provenance"]  # the commit the fresh run was made at
    commit, dirty = str(prov.get("commit") or "unknown"), bool(prov.get("dirty"))
    stamp = utc_now()
    out = diff.assign(verified=stamp, cpu=cpu_model(), hardware=hardware(), threads=int(threads),
                      commit=commit[:12] + ("+dirty" if dirty else ""),
                      against_commit=",".join(sorted({str(c)[:12] for c in committed.get("commit", pd.Series())})))
    path = results_dir / "verify" / f"{stamp.replace(':', '').replace('-', '')[:15]}Z.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return path


def fresh_rows(out: Path) -> pd.DataFrame:
    from repro.results import read_run

    rows = []
    for sub in ("model", "eval"):
        rows += read_run(out / sub / "metrics.json")["rows"]
    return pd.DataFrame(rows)


def compare(committed: pd.DataFrame, fresh: pd.DataFrame) -> pd.DataFrame:
    """(method, dataset, metric) -> committed, fresh, diff, relative diff; final rows (the SFT run's at its step)."""
    keys = ["method", "dataset", "metric"]

    def last(df):
        df = df.copy()
        df["step"] = pd.to_numeric(df["step"])
        fin = df[df["step"] == -1]
        rest = df[~df.set_index(keys).index.isin(fin.set_index(keys).index)]
        rest = rest[rest["step"] == rest.groupby(keys)["step"].transform("max")]
        return pd.concat([fin, rest]).groupby(keys)["value"].mean()

    a, b = last(committed), last(fresh)
    out = pd.concat([a.rename("committed"), b.rename("fresh")], axis=1).dropna().reset_index()
    out["diff"] = out["fresh"] - out["committed"]
    out["rel_diff"] = out["diff"] / out["committed"].abs().where(out["committed"] != 0)
    out["compared"] = ~out["metric"].isin(NOT_COMPARED)
    return out.sort_values(keys)


def main(argv=None) -> int:
    from repro.cli import parse_dataclass
    from repro.config import load_and_validate
    from repro.report.tables import load_table

    from benchmarks.arith.experiments import commands

    args = parse_dataclass(VerifyArgs, argv)
    config = load_and_validate(args.config)
    tier = config["tier"]
    results = Path(args.results or f"results/{tier}/latest")
    table = results / "nano.csv"
    if not table.exists():
        raise SystemExit(f"{table}: no committed nano table to compare with (run `make reproduce` first)")
    out = Path(args.out or f"work/verify-{tier}")
    dirs = dict(data_dir=str(out / "data"), model_dir=str(out / "model"), eval_dir=str(out / "eval"))
    if not (args.keep and (out / "eval" / "metrics.json").exists()):
        t0 = time.monotonic()
        for cmd in commands(config, **dirs, python=sys.executable):
            print("$", " ".join(cmd[:3]), "...", flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        print(f"nano stage re-run from scratch in {(time.monotonic() - t0) / 60:.1f} min", flush=True)
    committed = load_table(table)
    diff = compare(committed, fresh_rows(out))
    diff.to_csv(out / "diff.csv", index=False)
    pd.set_option("display.width", 160)
    print(diff.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    c = diff[diff["compared"]]
    same = int((c["diff"] == 0).sum())
    print(f"\n{same} of {len(c)} metrics identical; largest |diff| {c['diff'].abs().max():.4g} "
          f"({c.loc[c['diff'].abs().idxmax(), 'metric'] if len(c) else '-'}); written to {out / 'diff.csv'}")
    if args.record:
        print(f"recorded in {record(diff, results.resolve().parent, committed, out, config.get('threads', 1))} (the report's provenance shows it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
