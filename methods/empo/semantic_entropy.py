"""EMPO's semantic-entropy reward (Zhang et al., 2025, "Right Question is Already Half the
Answer: Fully Unsupervised LLM Reasoning Incentivization", arXiv 2504.05812, Sec. 3).

For one prompt with G sampled responses o_1..o_G:

* extract each response's final answer (last ``\\boxed{}``),
* cluster the answers into meaning classes c_1..c_K with math-verify,
* p(c_j) = |c_j| / G,   H = -sum_j p(c_j) log p(c_j)   (natural log),
* reward(o_i) = p(cluster of o_i),
* entropy thresholding: a prompt is optimised only when delta_low < H < delta_high (both
  exclusive); otherwise every response of that prompt gets reward 0 (hence zero GRPO advantage).
  ``delta_high=None`` means log G, so by default all-identical answers (H = 0) and all-different
  answers (H = log G) are both filtered, like the released code.

Equivalence convention (math-verify is asymmetric: ``verify(gold, pred)``): two answers a, b are
equivalent iff ``verify(parse(a), parse(b))`` **and** ``verify(parse(b), parse(a))`` — symmetric and
conservative. Clustering is greedy in order of appearance: an answer joins the first existing
cluster whose *representative* (first member) is equivalent to it, else opens a new cluster; this
makes the result deterministic even if math-verify's relation were not transitive. Identical
strings are equivalent without calling math-verify. Equivalence checks are cached within a group.
Missing/empty answers are singletons (variant ``empty_reward_zero``: they also get reward 0).

No gold answer ever enters this file: the reward functions take completions only.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

__all__ = [
    "answers_equivalent",
    "GroupEquivalence",
    "cluster_answers",
    "cluster_probabilities",
    "semantic_entropy",
    "semantic_entropy_rewards",
    "group_rewards",
    "batch_semantic_entropy_rewards",
    "SemanticEntropyReward",
    "completion_text",
]


# --------------------------------------------------------------------------------------------
# answer extraction / equivalence (thin wrappers over the math harness, with a fallback)
# --------------------------------------------------------------------------------------------
def _extract_boxed(text: str) -> str | None:
    """Last ``\\boxed{...}`` content of ``text`` (balanced braces), via the math harness."""
    from benchmarks.math.grading import extract_boxed

    return extract_boxed(text)


class GroupEquivalence:
    """Symmetric math-verify equivalence with each distinct answer parsed once (one group's cache).

    Same convention as ``answers_equivalent`` (both directions of ``verify(parse(a), parse(b))``,
    answers wrapped in ``\\boxed{}`` before parsing, like ``benchmarks.math.grading``), but parsing --
    the expensive part -- happens once per distinct string instead of four times per pair.
    math-verify's own timeouts are signal based: they are used in the main thread and disabled
    elsewhere. Errors and timeouts mean "not equivalent".
    """

    def __init__(self, timeout_s: float = 5.0):
        self.timeout = max(1, int(math.ceil(timeout_s)))
        self.parsed: dict[str, list] = {}

    def _parse(self, a: str) -> list:
        if a not in self.parsed:
            from math_verify import parse

            t = self.timeout if threading.current_thread() is threading.main_thread() else None
            try:
                self.parsed[a] = parse("\\boxed{" + a.strip().strip("$").strip() + "}", parsing_timeout=t)
            except Exception:  # noqa: BLE001
                self.parsed[a] = []
        return self.parsed[a]

    def __call__(self, a: str, b: str) -> bool:
        if a.strip() == b.strip():
            return True
        from benchmarks.math.grading import integer_literals_equal

        fast = integer_literals_equal(a, b)
        if fast is not None:
            return fast
        from math_verify import verify

        pa, pb = self._parse(a), self._parse(b)
        if not pa or not pb:
            return False
        t = self.timeout if threading.current_thread() is threading.main_thread() else None
        try:
            return bool(verify(pa, pb, timeout_seconds=t)) and bool(verify(pb, pa, timeout_seconds=t))
        except Exception:  # noqa: BLE001 - a grader failure must never crash training
            return False


def answers_equivalent(a: str, b: str, timeout_s: float = 5.0) -> bool:
    """Symmetric answer equivalence: true iff math-verify accepts a->b and b->a.

    Each direction is ``benchmarks.math.grading.answers_equivalent`` (``verify(parse(a),
    parse(b))`` with a wall-clock timeout; empty answers never equivalent). Any error counts as
    "not equivalent". ``cluster_answers`` uses the faster, equivalent ``GroupEquivalence`` by default.
    """
    if a.strip() == b.strip():
        return True
    from benchmarks.math.grading import answers_equivalent as harness_eq

    try:
        return bool(harness_eq(a, b, timeout_s=timeout_s)) and bool(harness_eq(b, a, timeout_s=timeout_s))
    except Exception:  # noqa: BLE001 - a grader failure must never crash training
        return False


# --------------------------------------------------------------------------------------------
# the math of the paper (pure functions)
# --------------------------------------------------------------------------------------------
def cluster_answers(
    answers: Sequence[str | None],
    equivalent: Callable[[str, str], bool] | None = None,
) -> list[int]:
    """Cluster extracted answers into meaning classes (EMPO Sec. 3.1).

    Args:
        answers: length-G list of extracted answers; ``None`` or blank = missing.
        equivalent: symmetric predicate on two non-empty answers (default: a fresh
            ``GroupEquivalence``, i.e. math-verify both ways with per-answer parse caching).

    Returns:
        length-G list of cluster ids 0..K-1, numbered in order of first appearance. A missing
        answer always gets its own singleton id. Equivalence calls are cached per distinct pair.
    """
    eq = equivalent or GroupEquivalence()
    cache: dict[tuple[str, str], bool] = {}

    def same(x: str, y: str) -> bool:
        if x == y:
            return True
        key = (x, y) if x <= y else (y, x)
        if key not in cache:
            cache[key] = bool(eq(x, y))
        return cache[key]

    reps: list[str | None] = []  # representative answer per cluster (None = singleton empty)
    ids: list[int] = []
    for ans in answers:
        norm = ans.strip() if isinstance(ans, str) else ""
        if not norm:
            reps.append(None)
            ids.append(len(reps) - 1)
            continue
        for cid, rep in enumerate(reps):
            if rep is not None and same(rep, norm):
                ids.append(cid)
                break
        else:
            reps.append(norm)
            ids.append(len(reps) - 1)
    return ids


def cluster_probabilities(cluster_ids: Sequence[int]) -> list[float]:
    """p(c_j) = |c_j| / G for clusters 0..K-1 (ids as returned by ``cluster_answers``)."""
    g = len(cluster_ids)
    if g == 0:
        return []
    k = max(cluster_ids) + 1
    counts = [0] * k
    for c in cluster_ids:
        counts[c] += 1
    return [n / g for n in counts]


def semantic_entropy(cluster_ids: Sequence[int]) -> float:
    """H = -sum_j p(c_j) log p(c_j), natural log (EMPO Eq. 2)."""
    return float(-sum(p * math.log(p) for p in cluster_probabilities(cluster_ids) if p > 0))


def group_rewards(
    cluster_ids: Sequence[int],
    delta_low: float = 0.0,
    delta_high: float | None = None,
    empty_mask: Sequence[bool] | None = None,
    tol: float = 1e-9,
) -> tuple[list[float], float, bool]:
    """Rewards of one group from its cluster ids, with entropy thresholding.

    Args:
        cluster_ids: length G.
        delta_low, delta_high: keep the prompt iff delta_low < H < delta_high (exclusive, with a
            ``tol`` so that H == log G computed in floating point counts as equal);
            ``delta_high=None`` means log G.
        empty_mask: optional length-G flags; True entries (missing answers) get reward 0.

    Returns:
        (rewards length G, entropy H, kept flag). Filtered prompts get all-zero rewards.
    """
    g = len(cluster_ids)
    if g == 0:
        return [], 0.0, False
    probs = cluster_probabilities(cluster_ids)
    h = semantic_entropy(cluster_ids)
    hi = math.log(g) if delta_high is None else float(delta_high)
    kept = (h > delta_low + tol) and (h < hi - tol)
    if not kept:
        return [0.0] * g, h, False
    rewards = [probs[c] for c in cluster_ids]
    if empty_mask is not None:
        rewards = [0.0 if e else r for r, e in zip(rewards, empty_mask)]
    return rewards, h, True


def completion_text(completion) -> str:
    """Text of a TRL completion: a string, or a conversational list of message dicts."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):  # [{"role": "assistant", "content": ...}, ...]
        parts = []
        for m in completion:
            c = m.get("content", "") if isinstance(m, dict) else str(m)
            if isinstance(c, list):  # content blocks
                c = "".join(b.get("text", "") for b in c if isinstance(b, dict))
            parts.append(str(c))
        return "".join(parts)
    raise TypeError(f"unsupported completion type {type(completion).__name__}")


def semantic_entropy_rewards(
    completions: Sequence,
    delta_low: float = 0.0,
    delta_high: float | None = None,
    empty_reward_zero: bool = False,
    equivalent: Callable[[str, str], bool] | None = None,
) -> tuple[list[float], float]:
    """EMPO reward for the G completions of ONE prompt.

    Args:
        completions: length-G list of response texts (or TRL conversational completions).
        delta_low, delta_high: entropy thresholds, exclusive; None -> log G.
        empty_reward_zero: variant where missing answers get reward 0 (default: singleton p=1/G).

    Returns:
        (rewards length G, semantic entropy H of the group). Rewards are all 0 when the prompt is
        filtered by the thresholds.
    """
    answers = [_extract_boxed(completion_text(c)) for c in completions]
    ids = cluster_answers(answers, equivalent=equivalent)
    empty = [not (a and a.strip()) for a in answers] if empty_reward_zero else None
    rewards, h, _ = group_rewards(ids, delta_low, delta_high, empty)
    return rewards, h


def _group_worker(args) -> tuple[list[float], float, bool]:
    texts, delta_low, delta_high, empty_reward_zero = args
    answers = [_extract_boxed(t) for t in texts]
    ids = cluster_answers(answers)
    empty = [not (a and a.strip()) for a in answers] if empty_reward_zero else None
    return group_rewards(ids, delta_low, delta_high, empty)


_POOL: ProcessPoolExecutor | None = None
_POOL_WORKERS = 0


def _pool(workers: int) -> ProcessPoolExecutor:
    global _POOL, _POOL_WORKERS
    if _POOL is None or _POOL_WORKERS != workers:
        if _POOL is not None:
            _POOL.shutdown(cancel_futures=True)
        # spawn: never fork a process that holds torch/OpenMP state (the trainer)
        _POOL = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        _POOL_WORKERS = workers
    return _POOL


def batch_semantic_entropy_rewards(
    completions: Sequence,
    num_generations: int,
    delta_low: float = 0.0,
    delta_high: float | None = None,
    empty_reward_zero: bool = False,
    workers: int = 0,
) -> tuple[list[float], list[float], list[bool]]:
    """EMPO rewards for a flat batch of groups (consecutive blocks of ``num_generations``).

    Args:
        completions: length N = num_prompts * G; completions of one prompt are contiguous.
        workers: 0 = serial in this process; >0 = one group per task on a process pool (math-verify's
            signal-based timeouts work in worker processes' main threads).

    Returns:
        (rewards length N, entropy per group, kept flag per group).
    """
    n, g = len(completions), int(num_generations)
    if g <= 0 or n % g:
        raise ValueError(f"batch of {n} completions is not a whole number of groups of num_generations={g}")
    texts = [completion_text(c) for c in completions]
    jobs = [(texts[i : i + g], delta_low, delta_high, empty_reward_zero) for i in range(0, n, g)]
    if workers and workers > 0 and len(jobs) > 1:
        results = list(_pool(workers).map(_group_worker, jobs))
    else:
        results = [_group_worker(j) for j in jobs]
    rewards = [r for res in results for r in res[0]]
    return rewards, [res[1] for res in results], [res[2] for res in results]


# --------------------------------------------------------------------------------------------
# TRL adapter
# --------------------------------------------------------------------------------------------
@dataclass
class SemanticEntropyReward:
    """TRL ``reward_funcs`` entry computing EMPO rewards over whole groups.

    TRL calls reward functions per process with that process's slice of the generation batch;
    a group of ``num_generations`` completions may be spread over several ranks. This adapter
    gathers the completions of all ranks (``accelerate.utils.gather_object``, rank order = TRL's
    global order), computes rewards for whole groups, and returns this rank's slice. Every other
    keyword TRL passes (dataset columns such as ``answer``) is ignored on purpose: no label can
    reach the reward.
    """

    num_generations: int  # G: completions per prompt (must equal GRPOConfig.num_generations)
    delta_low: float = 0.0  # keep prompts with H > delta_low (exclusive)
    delta_high: float | None = None  # keep prompts with H < delta_high (exclusive); None = log G
    empty_reward_zero: bool = False  # variant: missing answers get reward 0
    workers: int = 0  # process-pool size for clustering (0 = serial)
    history: list = field(default_factory=list)  # per-call stats: mean entropy, fraction filtered

    def __post_init__(self):
        self.__name__ = "semantic_entropy"  # TRL names the reward's log columns after __name__

    def __call__(self, prompts=None, completions=None, **kwargs) -> list[float]:
        local = list(completions)
        n_proc, rank = 1, 0
        try:
            from accelerate import PartialState

            state = PartialState()
            n_proc, rank = state.num_processes, state.process_index
        except Exception:  # noqa: BLE001 - no accelerate state: single process
            pass
        if n_proc > 1:
            from accelerate.utils import gather_object

            all_completions = gather_object([completion_text(c) for c in local])
        else:
            all_completions = [completion_text(c) for c in local]
        rewards, entropies, kept = batch_semantic_entropy_rewards(
            all_completions, self.num_generations, self.delta_low, self.delta_high,
            self.empty_reward_zero, self.workers,
        )
        stats = {
            "semantic_entropy": sum(entropies) / len(entropies),
            "frac_filtered": 1.0 - sum(kept) / len(kept),
        }
        self.history.append(stats)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            for k, v in stats.items():
                log_metric(f"empo/{k}", float(v))
        start = rank * len(local)
        return rewards[start : start + len(local)]


def make_reward(num_generations: int, delta_low: float = 0.0, delta_high: float | None = None,
                empty_reward_zero: bool = False, workers: int = 0) -> SemanticEntropyReward:
    """Factory used by the engine's reward registry (name ``semantic_entropy``)."""
    return SemanticEntropyReward(num_generations=num_generations, delta_low=delta_low,
                                 delta_high=delta_high, empty_reward_zero=empty_reward_zero,
                                 workers=workers)


def default_workers() -> int:
    """A reasonable pool size: half the visible cores, at least 1."""
    return max(1, (os.cpu_count() or 2) // 2)
