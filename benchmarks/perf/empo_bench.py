"""Benchmark: EMPO reward computation for a batch of groups, serial vs process pool.

    python -m benchmarks.perf.empo_bench --prompts 64 --group 16 --workers 2 --out work/tiny/perf/empo

A batch of ``prompts`` x ``group`` completions whose final answers look like real math answers
(integers, decimals, fractions in several equivalent LaTeX forms, radicals, pi, intervals,
expressions), with a random number of meaning classes per group. Times
``batch_semantic_entropy_rewards`` serially and on a pool of ``workers`` processes (pool start-up is
excluded: the trainer keeps one pool for the whole run), checks both give identical rewards and,
given the wall time of a nano rollout step (``--step-seconds``, or derived from TRL's
``train_steps_per_second`` in an engine ``--train-log``), reports the reward's share of a step. Writes ``<out>/bench.json``.
"""
from __future__ import annotations

import json
import random
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# answer families: each entry is a list of equivalent surface forms of one value
FAMILIES = [
    ["\\frac{1}{2}", "0.5", "1/2", "\\dfrac12", "\\frac12"],
    ["\\frac{3}{4}", "0.75", "3/4", "\\tfrac{3}{4}"],
    ["12.8", "\\frac{64}{5}", "64/5", "12.80"],
    ["\\sqrt{2}", "2^{1/2}", "\\sqrt 2"],
    ["\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}", "\\sqrt{3}/2"],
    ["2\\pi", "\\pi \\cdot 2", "2 \\pi"],
    ["(1, 3]", "(1,3]"],
    ["x^2 + 2x + 1", "(x+1)^2", "1 + 2x + x^2"],
    ["-7", "-7.0", "- 7"],
    ["100", "100.0", "10^2"],
]


def realistic_group(rng: random.Random, g: int) -> list[str]:
    """G completions: 1..G meaning classes (drawn from FAMILIES and random ints), mixed surface forms."""
    k = rng.choice([1, 2, 2, 3, 3, 4, 5, g])
    values = []
    for _ in range(k):
        if rng.random() < 0.6:
            values.append(rng.choice(FAMILIES))
        else:
            n = rng.randint(-500, 500)
            values.append([str(n), f"{n}.0"])
    out = []
    for _ in range(g):
        if rng.random() < 0.05:
            out.append("I could not finish the computation.")
            continue
        forms = rng.choice(values)
        out.append(f"Let me work through it step by step ... Therefore the answer is \\boxed{{{rng.choice(forms)}}}.")
    return out


@dataclass
class BenchArgs:
    """EMPO reward benchmark."""

    prompts: int = 64  # prompts per batch
    group: int = 16  # completions per prompt (G)
    workers: int = 2  # pool size for the parallel measurement
    repeats: int = 2  # timed repetitions (the best is reported)
    seed: int = 0  # seed of the synthetic answers
    step_seconds: float | None = None  # wall time of one rollout step (generation + its optimiser steps), optional
    train_log: str | None = None  # or: an engine train_log.jsonl (uses TRL's final train_steps_per_second)
    optimiser_steps_per_rollout: int = 4  # ppo_minibatches of that run: rewards are computed once per rollout
    out: str = "work/tiny/perf/empo"  # output directory (bench.json)


def _step_time(args: BenchArgs) -> float | None:
    if args.step_seconds is not None:
        return args.step_seconds
    if args.train_log and Path(args.train_log).exists():
        for line in Path(args.train_log).read_text().splitlines():
            rec = json.loads(line)
            if rec.get("train_steps_per_second"):
                return args.optimiser_steps_per_rollout / float(rec["train_steps_per_second"])
        return None
    return None


def run(args: BenchArgs) -> dict:
    from methods.empo.semantic_entropy import _pool, batch_semantic_entropy_rewards

    rng = random.Random(args.seed)
    flat = [c for _ in range(args.prompts) for c in realistic_group(rng, args.group)]
    timings = {}
    results = {}
    if args.workers > 0:
        pool = _pool(args.workers)
        list(pool.map(abs, range(args.workers)))  # start the workers before timing
        batch_semantic_entropy_rewards(flat[: 2 * args.group], args.group, workers=args.workers)  # warm imports
    for mode, workers in (("serial", 0), ("pool", args.workers)):
        if mode == "pool" and workers <= 0:
            continue
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            results[mode] = batch_semantic_entropy_rewards(flat, args.group, workers=workers)
            best = min(best, time.perf_counter() - t0)
        timings[mode] = best
    if "pool" in results and results["pool"][0] != results["serial"][0]:
        raise AssertionError("pool and serial rewards differ")
    rewards, entropies, kept = results["serial"]
    step = _step_time(args)
    report = {
        "config": asdict(args),
        "completions": len(flat),
        "seconds_serial": timings["serial"],
        "seconds_pool": timings.get("pool"),
        "speedup": timings["serial"] / timings["pool"] if "pool" in timings else None,
        "mean_semantic_entropy": statistics.mean(entropies),
        "frac_filtered": 1 - sum(kept) / len(kept),
        "rollout_step_seconds": step,
        "share_of_step_serial": timings["serial"] / step if step else None,
        "share_of_step_pool": timings["pool"] / step if step and "pool" in timings else None,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=1))
    return report


def main(argv=None) -> None:
    from repro.cli import parse_dataclass

    print(json.dumps(run(parse_dataclass(BenchArgs, argv)), indent=1))


if __name__ == "__main__":
    main()
