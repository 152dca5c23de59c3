"""Calibrate a task's behaviour policies to target success rates (see policies.calibrate).

    python -m benchmarks.metaworld.calibrate --task door-open --targets 0.2,0.5 --out calibration.json
"""
from __future__ import annotations

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
    grid: list[float] = field(default_factory=lambda: [0.0, 0.15, 0.3, 0.45, 0.6, 0.75])  # coarse w grid
    grid_episodes: int = 6  # episodes per grid point
    refine_rounds: int = 3  # refinement measurements per target
    refine_episodes: int = 8  # episodes per refinement measurement
    final_episodes: int = 16  # fresh episodes measuring the chosen w (recorded with the dataset)
    seed: int = 0  # calibration seed (episode seeds disjoint from collection)
    workers: int = 2  # rollout worker processes
    out: str = "calibration.json"  # output JSON


def main(argv: Sequence[str] | None = None) -> None:
    from repro.cli import parse_dataclass
    from repro.io import atomic_write_json

    cfg = parse_dataclass(CalibrateConfig, argv)
    t0 = time.monotonic()
    with make_pool(cfg.workers) as pool:
        res = calibrate(cfg.task, cfg.targets, cfg.sigma, cfg.distractor_seeds, cfg.grid, cfg.grid_episodes,
                        cfg.refine_rounds, cfg.refine_episodes, cfg.final_episodes, cfg.seed, cfg.workers, pool)
    atomic_write_json(cfg.out, {"task": cfg.task, "sigma": cfg.sigma,
                                "config": asdict(cfg), "seconds": round(time.monotonic() - t0, 1),
                                "results": calibration_to_dict(res)})
    print(f"wrote {cfg.out} in {time.monotonic() - t0:.1f}s")


if __name__ == "__main__":
    main()
