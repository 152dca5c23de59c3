"""Several runs of one entry point in one process: ``python -m repro.multirun MODULE ARGS [-- ARGS ...]``.

Each ``--``-separated flag set is handed to ``MODULE.main(argv)`` in turn. Starting a Python process that imports
torch, transformers and TRL costs ~7 s on the tiny tier's CPU (torch + MetaWorld ~3 s), against 10-50 s of work
per run, so with ``group_seeds: true`` the workflow gives one process all seeds of a method. A run's results do
not depend on the runs before it in the process (each entry point seeds its own RNGs and builds its own model,
data and trainer): tests/test_multirun.py checks it for RL and EM runs, tests/test_ppl_train.py against separate
processes.
"""
from __future__ import annotations

import importlib
import sys
from typing import Sequence


def split_runs(argv: Sequence[str]) -> list[list[str]]:
    """``a -- b -- c`` -> [a, b, c] (empty flag sets dropped)."""
    runs: list[list[str]] = [[]]
    for a in argv:
        if a == "--":
            runs.append([])
        else:
            runs[-1].append(a)
    return [r for r in runs if r]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        raise SystemExit("usage: python -m repro.multirun MODULE ARGS [-- ARGS ...]")
    module = importlib.import_module(argv[0])
    runs = split_runs(argv[1:])
    for i, run in enumerate(runs, 1):
        print(f"[multirun] {argv[0]}: run {i}/{len(runs)}", file=sys.stderr, flush=True)
        rc = module.main(run)
        if isinstance(rc, int) and not isinstance(rc, bool) and rc != 0:  # some mains return results, not codes
            return rc  # a failing run fails the job (Snakemake drops all of its outputs anyway)
    return 0


if __name__ == "__main__":
    sys.exit(main())
