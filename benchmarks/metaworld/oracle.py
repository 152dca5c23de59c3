"""Fit the oracle critic V* of a task on noisy-expert Monte-Carlo returns (see preferences.py).

    python -m benchmarks.metaworld.oracle --task door-open --out oracle.pt
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from benchmarks.metaworld.preferences import fit_oracle_value


@dataclass
class OracleConfig:
    """Oracle value network for the regret teacher."""

    task: str  # MetaWorld task
    episodes: int = 20  # noisy-expert rollouts
    sigma: float = 0.3  # expert action noise std (same as the behaviour policies)
    gamma: float = 0.99  # discount
    rounds: int = 2  # fits; rounds >= 2 bootstrap the return beyond the time limit
    steps: int = 1500  # Adam steps per round (batch 256)
    seed: int = 0  # seed
    workers: int = 2  # rollout worker processes
    threads: int = 1  # torch threads
    out: str = "oracle.pt"  # output checkpoint


def main(argv: Sequence[str] | None = None) -> None:
    import torch

    from repro.cli import parse_dataclass

    cfg = parse_dataclass(OracleConfig, argv)
    torch.set_num_threads(cfg.threads)
    ck = fit_oracle_value(cfg.task, cfg.episodes, cfg.sigma, cfg.gamma, cfg.rounds, cfg.steps, seed=cfg.seed,
                          workers=cfg.workers)
    ck["config"] = asdict(cfg)
    from pathlib import Path

    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{cfg.out}.tmp"
    torch.save(ck, tmp)
    import os

    os.replace(tmp, cfg.out)
    print(f"wrote {cfg.out} (expert success {ck['expert_success']:.2f})")


if __name__ == "__main__":
    main()
