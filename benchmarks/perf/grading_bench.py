"""Grading throughput: serial ``grade`` vs the process pool ``grade_many`` on realistic pairs.

Pairs are built from the real evaluation sets (../shared/data/math): for every problem a
chain-of-thought-like completion with the gold answer boxed verbatim, the gold in another
equivalent form (fraction <-> decimal, integer as a fraction, thousands separators, ``\\text{}``,
``$...$``), a wrong answer (a perturbed number) and some completions without a box. Prints
both throughputs, their ratio, and the pool's timeout / crash counters ("hangs")::

    python -m benchmarks.perf.grading_bench --data-dir ../shared/data/math --pairs 2400 --workers 2
"""

from __future__ import annotations

import os
import random
import re
import resource
import time
import warnings
from dataclasses import dataclass
from fractions import Fraction

from benchmarks.math.datasets import braces_balanced, load_problems
from benchmarks.math.grading import GraderPool, _parse_answer, grade

SETS = ("math500", "minerva", "olympiadbench", "aime24", "aime25", "amc23")


@dataclass
class BenchArgs:
    """Serial vs pooled math-verify grading on realistic (completion, gold) pairs."""

    data_dir: str = "../shared/data/math"  # directory of the JSONL sets
    pairs: int = 2400  # number of (completion, gold) pairs (>= 2000 for the benchmark)
    workers: int = 2  # grading processes for grade_many
    timeout_s: float = 5.0  # per-item wall-clock limit
    adversarial: int = 0  # extra adversarial items (power towers) appended to the batch
    seed: int = 0  # pair construction seed


def _other_form(ans: str, rng: random.Random) -> str | None:
    """An equivalent rewriting of a gold answer, or None when none is known."""
    a = ans.strip()
    if re.fullmatch(r"-?\d+", a):
        n = int(a)
        forms = [f"\\frac{{{2 * n}}}{{2}}", f"{n}.0", f"\\text{{{n}}}", f"${n}$"]
        if abs(n) >= 1000:
            forms.append(f"{n:,}")
        return rng.choice(forms)
    m = re.fullmatch(r"\\d?frac\{(-?\d+)\}\{(\d+)\}", a)
    if m:
        f = Fraction(int(m.group(1)), int(m.group(2)))
        d = f.denominator
        while d % 2 == 0:
            d //= 2
        while d % 5 == 0:
            d //= 5
        if d == 1:
            return str(float(f))
        return f"{f.numerator}/{f.denominator}"
    if re.fullmatch(r"-?\d+\.\d+", a):
        f = Fraction(a)
        return f"\\frac{{{f.numerator}}}{{{f.denominator}}}"
    return None


def _wrong(ans: str, rng: random.Random) -> str:
    nums = list(re.finditer(r"\d+", ans))
    if not nums:
        return ans + "+1"
    m = rng.choice(nums)
    return ans[: m.start()] + str(int(m.group()) + rng.randint(1, 9)) + ans[m.end():]


def _completion(body: str, answer: str | None) -> str:
    text = f"Let us work through the problem. {body[:200]} After simplifying, we get the result."
    return text + (f" The final answer is $\\boxed{{{answer}}}$." if answer is not None else " I am not sure.")


def build_pairs(data_dir: str, n: int, seed: int) -> list[tuple[str, str, str]]:
    """(completion, gold, kind) with kind in same / other_form / wrong / no_box."""
    rng = random.Random(seed)
    # Gold answers with unbalanced braces (truncated upstream, 68 in minerva) are left out.
    problems = [p for s in SETS for p in load_problems(s, "local", data_dir) if braces_balanced(p["answer"])]
    pairs = []
    for p in problems:
        gold = p["answer"]
        pairs.append((_completion(p["problem"], gold), gold, "same"))
        other = _other_form(gold, rng)
        if other is not None:
            pairs.append((_completion(p["problem"], other), gold, "other_form"))
        pairs.append((_completion(p["problem"], _wrong(gold, rng)), gold, "wrong"))
        if rng.random() < 0.1:
            pairs.append((_completion(p["problem"], None), gold, "no_box"))
    rng.shuffle(pairs)
    while len(pairs) < n:
        pairs += pairs[: n - len(pairs)]
    return pairs[:n]


def main(argv=None) -> dict:
    from repro.cli import parse_dataclass

    args = parse_dataclass(BenchArgs, argv)
    warnings.simplefilter("ignore")  # the loader's truncated-answer warning; those rows are skipped
    pairs = build_pairs(args.data_dir, args.pairs, args.seed)
    items = [(c, g) for c, g, _ in pairs]
    items += [(r"\boxed{9^{9^{9^{9^9}}}}", "3")] * args.adversarial
    # Pool first (its workers fork from a parent with cold caches), then serial with a cleared
    # parse cache, so neither run profits from the other's cached math-verify parses.
    load_before = os.getloadavg()[0]
    _parse_answer.cache_clear()
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    with GraderPool(workers=args.workers, timeout_s=args.timeout_s) as pool:
        pooled = pool.grade(items)
        stats = dict(pool.stats)
    t_pool = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_pool = (c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime) + (
        p1.ru_utime + p1.ru_stime - p0.ru_utime - p0.ru_stime)
    _parse_answer.cache_clear()
    t0 = time.perf_counter()
    serial = [grade(c, g, timeout_s=args.timeout_s) for c, g in items]
    t_serial = time.perf_counter() - t0
    p2 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_serial = p2.ru_utime + p2.ru_stime - p1.ru_utime - p1.ru_stime
    load_after = os.getloadavg()[0]
    kinds = {}
    for (_, _, kind), ok in zip(pairs, pooled):
        kinds.setdefault(kind, []).append(ok)
    out = {
        "pairs": len(items),
        "serial_items_per_s": len(items) / t_serial,
        "pool_items_per_s": len(items) / t_pool,
        "speedup": t_serial / t_pool,
        "serial_s": t_serial,
        "pool_s": t_pool,
        "disagreements": sum(a != b for a, b in zip(serial, pooled)),
        "pool_timeouts": stats["timeouts"],
        "pool_crashes": stats["crashes"],
        "cpu_serial_s": cpu_serial,
        "cpu_pool_s": cpu_pool,
        "load_avg": (load_before, load_after),
        "accuracy_by_kind": {k: sum(v) / len(v) for k, v in sorted(kinds.items())},
    }
    print(f"{len(items)} pairs ({', '.join(f'{k}: {len(v)}' for k, v in sorted(kinds.items()))})")
    print(f"serial : {t_serial:7.2f} s  {out['serial_items_per_s']:8.1f} items/s")
    print(f"pool({args.workers}): {t_pool:7.2f} s  {out['pool_items_per_s']:8.1f} items/s  (incl. worker start-up)")
    print(f"speedup: {out['speedup']:.2f}x   timeouts (killed workers): {stats['timeouts']}   crashes: "
          f"{stats['crashes']}   serial/pool disagreements: {out['disagreements']}")
    # On a shared machine the wall-clock ratio is capped by the CPU the others leave; the CPU the
    # pool spends per item shows what the same run would do with `workers` free cores.
    busy = cpu_pool / t_pool
    print(f"cpu    : serial {cpu_serial:.2f} s, pool {cpu_pool:.2f} s (parent + workers); the pool got "
          f"{busy:.2f} of {args.workers} cores; 1-min load average {load_before:.1f} -> {load_after:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"         speedup with {args.workers} free cores (serial CPU / pool CPU per core): "
          f"{args.workers * cpu_serial / cpu_pool:.2f}x")
    print("fraction graded correct by kind: " + ", ".join(f"{k}={v:.3f}" for k, v in out["accuracy_by_kind"].items()))
    return out


if __name__ == "__main__":
    main()
