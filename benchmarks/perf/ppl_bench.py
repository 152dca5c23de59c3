"""Performance checks of the PPL stage (issue 8).

1. Collection throughput (env steps/s) on one task: raw ``env.step`` (replaying the policy's own
   actions, so the physics is the same) vs the labelled behaviour policy (expert + distractor + Gaussian sample + label recording), with 1 worker,
   and the behaviour policy with 2 workers. Targets: policy/raw >= 0.9 per worker, 2 workers / 1 >= 1.6.
2. Training updates/s of CPL and PPL on the same network and batch (PPL adds the closed-form KL).

    python -m benchmarks.perf.ppl_bench --task door-open --episodes 8 --out work/perf/ppl_bench.json
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np


@dataclass
class BenchConfig:
    """Throughput of collection and of CPL vs PPL updates."""

    task: str = "door-open"  # MetaWorld task
    episodes: int = 8  # episodes per collection measurement (x 250 steps)
    w: float = 0.5  # behaviour distractor weight (steps/s barely depend on it; no early stop)
    updates: int = 100  # timed updates per loss
    batch: int = 16  # segment pairs per update
    segment_length: int = 64  # steps per segment
    hidden: list[int] = field(default_factory=lambda: [256, 256])  # policy MLP
    threads: int = 1  # torch threads
    out: str = ""  # optional JSON output


def raw_steps_per_s(task: str, episodes: int, w: float) -> float:
    """Bare ``env.step`` replaying the behaviour policy's own (clipped) actions, in this process.

    Replaying the same actions from the same start states keeps the physics identical (random
    actions touch objects less and simulate faster), so the ratio measures only the overhead of
    the policy (expert + distractor + sampling) and of recording the labels.
    """
    from benchmarks.metaworld.envs import make_env, reset_episode
    from benchmarks.metaworld.policies import BehaviourSpec, rollout

    spec = BehaviourSpec(task, w, 0.3, 0)
    plans = [(10**5 + i, np.clip(rollout(spec, 10**5 + i)["actions"], -1, 1).astype(np.float32))
             for i in range(episodes)]
    env = make_env(task)
    n, t0 = 0, time.perf_counter()
    for seed, actions in plans:
        reset_episode(env, seed)
        for a in actions:
            env.step(a)
            n += 1
    return n / (time.perf_counter() - t0)


def policy_steps_per_s(task: str, episodes: int, w: float, workers: int) -> float:
    """Labelled behaviour-policy rollouts over ``workers`` processes (pool start-up excluded)."""
    from benchmarks.metaworld.policies import BehaviourSpec, make_pool, rollout, run_episodes

    spec = BehaviourSpec(task, w, 0.3, 0)
    jobs = [(spec, 10**5 + i) for i in range(episodes)]
    if workers == 1:
        rollout(spec, 0, record=False, horizon=5)  # build env and policy outside the timing
        t0 = time.perf_counter()
        eps = run_episodes(jobs, workers=1)
    else:
        with make_pool(workers) as pool:
            pool.map(_warm, [spec] * workers)
            t0 = time.perf_counter()
            eps = run_episodes(jobs, workers=workers, pool=pool)
    return sum(e["length"] for e in eps) / (time.perf_counter() - t0)


def _warm(spec):
    import time as _t

    from benchmarks.metaworld.policies import rollout

    rollout(spec, 0, record=False, horizon=5)
    _t.sleep(0.2)  # so that every worker gets one warm-up job


def updates_per_s(method: str, cfg: BenchConfig) -> float:
    import torch

    from methods.ppl.losses import cpl_loss, ppl_loss
    from methods.ppl.policy import GaussianPolicy

    torch.manual_seed(0)
    pol = GaussianPolicy(39, 4, cfg.hidden, dropout=0.25)
    opt = torch.optim.Adam(pol.parameters(), lr=1e-4)
    B, L = cfg.batch, cfg.segment_length
    obs, act = torch.randn(2 * B, L, 39), torch.randn(2 * B, L, 4)
    mu_b, std_b = torch.rand(2 * B, L, 4) * 2 - 1, torch.full((2 * B, L, 4), 0.3)

    def step():
        if method == "cpl":
            lp = pol.log_prob(obs, act)
            loss = cpl_loss(lp[:B], lp[B:])
        else:
            lp, kl = pol.log_prob_and_kl(obs, act, mu_b, std_b)
            loss = ppl_loss(lp[:B], lp[B:], kl[:B], kl[B:])
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(cfg.updates):
        step()
    return cfg.updates / (time.perf_counter() - t0)


def run(cfg: BenchConfig) -> dict:
    import torch

    torch.set_num_threads(cfg.threads)
    raw = raw_steps_per_s(cfg.task, cfg.episodes, cfg.w)
    pol1 = policy_steps_per_s(cfg.task, cfg.episodes, cfg.w, 1)
    pol2 = policy_steps_per_s(cfg.task, 2 * cfg.episodes, cfg.w, 2)
    # interleave CPL / PPL timings so that load changes from other processes hit both alike
    cpl, ppl = [], []
    for _ in range(3):
        cpl.append(updates_per_s("cpl", cfg))
        ppl.append(updates_per_s("ppl", cfg))
    res = {"config": asdict(cfg), "raw_env_steps_per_s": raw, "policy_steps_per_s_1worker": pol1,
           "policy_steps_per_s_2workers": pol2, "policy_over_raw": pol1 / raw, "speedup_2_over_1": pol2 / pol1,
           "cpl_updates_per_s": float(np.median(cpl)), "ppl_updates_per_s": float(np.median(ppl))}
    res["ppl_over_cpl_updates"] = res["ppl_updates_per_s"] / res["cpl_updates_per_s"]
    res["pass_policy_over_raw"] = res["policy_over_raw"] >= 0.9
    res["pass_speedup"] = res["speedup_2_over_1"] >= 1.6
    return res


def main(argv: Sequence[str] | None = None) -> None:
    from repro.cli import parse_dataclass

    cfg = parse_dataclass(BenchConfig, argv)
    res = run(cfg)
    for k, v in res.items():
        if k != "config":
            print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    if cfg.out:
        from repro.io import atomic_write_json

        atomic_write_json(cfg.out, res)


if __name__ == "__main__":
    main()
