"""Fit the entropy-performance law on logged training runs and write it as result rows.

    python -m methods.entropy_mechanism.fit_law --runs work/tiny/entropy_mechanism/nano/grpo/seed0,... \\
        --seeds 0,1 --method grpo --model-name nano --dataset arith_test --out work/tiny/entropy_mechanism/nano/law/grpo

Points: each validation row ``val/acc`` at optimiser step v of ``train_log.jsonl`` is paired with the policy
entropy of the model that was validated: the mean entropy of the rollout it generated next, over that rollout's
``steps_per_rollout`` optimiser steps (law.pair_with_rollout_entropy; one entropy per rollout, as the official code
logs it). Rows (paper entropy_mechanism, step -1):
``law_a``, ``law_b``, ``law_ceiling`` (= b - a), ``law_fit_rmse``, ``law_n_points`` of the fit pooled over
all seeds and ``law_steps_per_rollout`` (the pairing's k, so the report pairs the table's rows the same way; seed
empty), and ``law_early_fit_rmse`` / ``law_early_ceiling`` per seed (fit on the first
``early_fit_fraction`` of that run's points: RMSE on the rest, and the ceiling b - a that the early fit
predicts) plus their means over seeds (seed empty).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from methods.entropy_mechanism.law import (early_fit, fit_entropy_law, pair_with_rollout_entropy, predict,
                                           predicted_ceiling)
from repro.cli import parse_dataclass


@dataclass
class FitLawArgs:
    """Fit R = -a exp(H) + b on (entropy, validation accuracy) points of training runs."""

    runs: list[str]  # run directories (each with train_log.jsonl)
    seeds: list[int]  # the seed of each run (same order)
    method: str = "grpo"  # results: method column
    model_name: str = "nano"  # results: model column
    dataset: str = "val"  # results: dataset column (the validation split)
    metric: str = "val/acc"  # the score column of train_log.jsonl
    early_fit_fraction: float = 0.15  # fraction of the first points used by the early fit
    steps_per_rollout: int = 1  # optimiser steps per rollout (ppo_minibatches): one entropy per rollout
    out: str = "work/tiny/entropy_mechanism/law"  # output directory (metrics.json, points.json)


def law_points(log_path: str | Path, metric: str = "val/acc", steps_per_rollout: int = 1
               ) -> tuple[list[float], list[float], list[int]]:
    """(entropy, score, step) points of one run's train_log.jsonl, in step order."""
    entropy, vals = {}, {}
    for i, line in enumerate(Path(log_path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{log_path}:{i}: not valid JSON ({e.msg})") from None
        step = int(rec["step"])
        if rec.get("entropy") is not None:
            entropy[step] = float(rec["entropy"])
        if rec.get(metric) is not None:
            vals[step] = float(rec[metric])
    if not entropy:
        raise ValueError(f"{log_path}: no entropy rows")
    return pair_with_rollout_entropy(entropy, vals, steps_per_rollout)


def main(argv: list[str] | None = None) -> int:
    from repro.provenance import utc_now
    from repro.io import atomic_write_json
    from repro.results import make_row, write_run

    args = parse_dataclass(FitLawArgs, argv)
    started = utc_now()
    if len(args.runs) != len(args.seeds):
        raise ValueError(f"--runs has {len(args.runs)} entries but --seeds has {len(args.seeds)}")
    row = lambda seed, metric, value: make_row("entropy_mechanism", args.method, args.model_name,  # noqa: E731
                                              args.dataset, seed, -1, metric, float(value))
    rows, all_h, all_r, per_run, early = [], [], [], {}, []
    for run, seed in zip(args.runs, args.seeds):
        h, r, steps = law_points(Path(run) / "train_log.jsonl", args.metric, args.steps_per_rollout)
        per_run[str(seed)] = {"entropy": h, "score": r, "step": steps}
        all_h += h
        all_r += r
        try:
            res = early_fit(h, r, frac=args.early_fit_fraction)
        except ValueError as e:
            print(f"fit_law: seed {seed}: early fit skipped ({e})", file=sys.stderr)
            continue
        early.append((res["rmse"], res["ceiling"]))
        rows.append(row(seed, "law_early_fit_rmse", res["rmse"]))
        rows.append(row(seed, "law_early_ceiling", res["ceiling"]))
    a, b = fit_entropy_law(all_h, all_r)
    rmse = float(np.sqrt(np.mean((predict(all_h, a, b) - np.asarray(all_r)) ** 2)))
    rows += [row(None, "law_a", a), row(None, "law_b", b), row(None, "law_ceiling", predicted_ceiling(a, b)),
             row(None, "law_fit_rmse", rmse), row(None, "law_n_points", len(all_h)),
             row(None, "law_steps_per_rollout", args.steps_per_rollout)]
    if early:
        rows.append(row(None, "law_early_fit_rmse", float(np.mean([e[0] for e in early]))))
        rows.append(row(None, "law_early_ceiling", float(np.mean([e[1] for e in early]))))
    out = Path(args.out)
    atomic_write_json(out / "points.json", {"a": a, "b": b, "runs": per_run})
    write_run(out, rows, config=args, started=started)
    print(f"fit_law: {args.method}: a={a:.4f} b={b:.4f} ceiling={b - a:.4f} rmse={rmse:.4f} "
          f"({len(all_h)} points)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
