"""EMPO training curves: semantic entropy and fraction of filtered prompts per optimiser step.

    python -m methods.empo.curves --run-dir work/tiny/empo/nano/empo/seed0 --method empo --seed 0

The EMPO reward (``SemanticEntropyReward``) logs ``empo/semantic_entropy`` and
``empo/frac_filtered`` through TRL's ``log_metric``; the engine writes them to the run's
``train_log.jsonl``. This turns them into result rows (``<run-dir>/curves/metrics.json``); the
accuracy curve (``val_acc``) is already in the run's own metrics.json.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from repro.io import iter_jsonl

KEYS = {"empo/semantic_entropy": "semantic_entropy", "empo/frac_filtered": "frac_filtered"}


@dataclass
class CurvesArgs:
    """Collect EMPO's per-step reward statistics into result rows."""

    run_dir: str  # a train_rl run directory with train_log.jsonl
    method: str = "empo"  # results: method column
    model_name: str = "nano"  # results: model column
    dataset: str = "arith_unlabeled"  # results: dataset column (the training prompts)
    seed: int = 0  # results: seed column
    paper: str = "empo"  # results: paper column


def curve_rows(log_lines: list[str], args: CurvesArgs) -> list[dict]:
    """Rows for every logged step that carries EMPO statistics (errors name the line)."""
    from repro.results import make_row

    rows = []
    for _, rec in iter_jsonl(log_lines, f"{args.run_dir}/train_log.jsonl"):
        for key, metric in KEYS.items():
            if rec.get(key) is not None:
                rows.append(make_row(args.paper, args.method, args.model_name, args.dataset, args.seed,
                                     int(rec.get("step", -1)), metric, float(rec[key])))
    return rows


def main(argv=None) -> None:
    from repro.cli import parse_dataclass
    from repro.provenance import utc_now
    from repro.results import write_run

    args = parse_dataclass(CurvesArgs, argv)
    started = utc_now()
    log = Path(args.run_dir) / "train_log.jsonl"
    if not log.exists():
        raise FileNotFoundError(f"{log}: no training log (run methods.engine.train_rl first)")
    rows = curve_rows(log.read_text().splitlines(), args)
    if not rows:
        raise ValueError(f"{log}: no 'empo/semantic_entropy' entries; was the run trained with --reward semantic_entropy?")
    print(f"wrote {write_run(Path(args.run_dir) / 'curves', rows, config=args, seed=args.seed, started=started)}")


if __name__ == "__main__":
    main()
