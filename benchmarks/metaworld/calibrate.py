"""Calibrate a task's behaviour policies to target success rates (see policies.calibrate).

A search on the distractor weight w over a fixed pool of common-random-number episodes, then a
fresh measurement of the chosen w. A target out of reach (the success curve jumps over it) or a
fresh rate more than its tolerance off is printed as a WARNING and recorded per result
(``reached``, ``within_tolerance``, ``warnings``) and in the file's top-level ``warnings``.

    python -m benchmarks.metaworld.calibrate --task door-open --targets 0.2,0.5 --out calibration.json
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

from benchmarks.metaworld.policies import calibrate, calibration_to_dict, make_pool


@dataclass
class CalibrateConfig:
    """Find the distractor weight w giving each target success rate on one task."""

    task: str  # MetaWorld task, e.g. door-open
    targets: list[float] = field(default_factory=lambda: [0.2, 0.5])  # target success rates
    sigma: float = 0.3  # behaviour action std
    distractor_seeds: list[int] = field(default_factory=lambda: [1, 0])  # distractor MLP seed j per target
    tolerances: list[float] = field(default_factory=lambda: [0.1, 0.15])  # allowed |success - target| per target
    grid: list[float] = field(default_factory=lambda: [0.0, 0.15, 0.3, 0.45, 0.6, 0.75])  # coarse w grid
    grid_episodes: int = 8  # pool episodes measured per coarse grid point
    episodes: int = 50  # common-random-number episode pool of the search
    w_tol: float = 0.0005  # the search stops when the w bracket is this narrow
    max_steps: int = 4  # regula-falsi steps on the whole pool (each rolls out the pool once)
    final_episodes: int = 50  # fresh episodes measuring the chosen w (recorded with the dataset)
    seed: int = 0  # calibration seed (episode seeds disjoint from collection)
    workers: int = 2  # rollout worker processes
    out: str = "calibration.json"  # output JSON


def main(argv: Sequence[str] | None = None) -> None:
    from repro.cli import parse_dataclass
    from repro.io import atomic_write_json

    cfg = parse_dataclass(CalibrateConfig, argv)
    t0, cpu0 = time.monotonic(), os.times()
    with make_pool(cfg.workers) as pool:
        res = calibrate(cfg.task, cfg.targets, cfg.sigma, cfg.distractor_seeds, cfg.tolerances, cfg.grid,
                        cfg.grid_episodes, cfg.episodes, cfg.w_tol, cfg.max_steps, cfg.final_episodes, cfg.seed,
                        cfg.workers, pool)
    cpu1 = os.times()  # the pool's workers have been joined: their CPU time is in children_*
    cpu = sum(getattr(cpu1, k) - getattr(cpu0, k) for k in ("user", "system", "children_user", "children_system"))
    warnings = [f"target {r.target:.2f}: {m}" for r in res for m in r.warnings]
    atomic_write_json(cfg.out, {"task": cfg.task, "sigma": cfg.sigma,
                                "config": asdict(cfg), "seconds": round(time.monotonic() - t0, 1),
                                "cpu_seconds": round(cpu, 1), "load_average": [round(x, 2) for x in os.getloadavg()],
                                "warnings": warnings, "results": calibration_to_dict(res)})
    print(f"wrote {cfg.out} in {time.monotonic() - t0:.1f}s ({cpu:.1f} CPU-s)"
          + (f" with {len(warnings)} WARNING(s): see 'warnings' in the file" if warnings else ""))


if __name__ == "__main__":
    main()
