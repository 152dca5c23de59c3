"""Evaluation metrics over sampled answers (../shared/spec/evaluation.md, "Metrics").

All functions are pure; equivalence of answers is injected (``equivalent``), defaulting to
math-verify via :func:`benchmarks.math.grading.answers_equivalent`.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

__all__ = [
    "pass_at_k",
    "avg_at_k",
    "cluster_answers",
    "majority_answer",
    "maj_at_k",
    "macro_average",
]

Equivalence = Callable[[str, str], bool]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k estimator from ``n`` samples of which ``c`` are correct.

    pass@k = 1 - C(n - c, k) / C(n, k)  (Chen et al. 2021, "Evaluating Large Language Models
    Trained on Code", eq. 1), computed as the numerically stable product
    1 - prod_{i=n-c+1}^{n} (1 - k / i).
    """
    if not (isinstance(n, int) and isinstance(c, int) and isinstance(k, int)):
        raise TypeError(f"pass_at_k expects ints, got n={n!r}, c={c!r}, k={k!r}")
    if n < 1 or not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs n >= 1, 0 <= c <= n, 1 <= k <= n; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def avg_at_k(correct: Sequence[Sequence[bool]]) -> float:
    """avg@k: mean over problems of the fraction of a problem's k samples that are correct.

    ``correct`` is a (num_problems, k) nested sequence of booleans (rows may differ in length).
    Greedy decoding is k = 1, i.e. pass@1.
    """
    if len(correct) == 0:
        raise ValueError("avg_at_k: no problems")
    per_problem = []
    for i, row in enumerate(correct):
        if len(row) == 0:
            raise ValueError(f"avg_at_k: problem {i} has no samples")
        per_problem.append(sum(bool(x) for x in row) / len(row))
    return sum(per_problem) / len(per_problem)


def cluster_answers(answers: Sequence[str | None], equivalent: Equivalence) -> list[int]:
    """Greedy equivalence clustering: cluster id per answer (-1 for None/empty answers).

    Each answer joins the first existing cluster whose representative (its first member) is
    equivalent to it, else starts a new cluster. Ids are 0, 1, ... in order of first appearance.
    Exact string matches skip the (expensive) ``equivalent`` call.
    """
    reps: list[str] = []
    ids: list[int] = []
    for a in answers:
        if a is None or not str(a).strip():
            ids.append(-1)
            continue
        a = str(a).strip()
        for cid, rep in enumerate(reps):
            if a == rep or equivalent(rep, a):
                ids.append(cid)
                break
        else:
            reps.append(a)
            ids.append(len(reps) - 1)
    return ids


def majority_answer(
    answers: Sequence[str | None], equivalent: Equivalence | None = None
) -> tuple[int | None, list[int]]:
    """Index of one answer of the largest cluster (ties: the cluster seen first) + cluster ids.

    Returns ``(None, ids)`` when no answer was extracted at all.
    """
    if equivalent is None:
        from benchmarks.math.grading import answers_equivalent as equivalent
    ids = cluster_answers(answers, equivalent)
    counts: dict[int, int] = {}
    for cid in ids:
        if cid >= 0:
            counts[cid] = counts.get(cid, 0) + 1
    if not counts:
        return None, ids
    best = max(counts, key=lambda c: (counts[c], -c))
    return ids.index(best), ids


def maj_at_k(
    answers: Sequence[str | None],
    correct: Sequence[bool],
    k: int | None = None,
    equivalent: Equivalence | None = None,
) -> float:
    """maj@k for one problem: 1.0 if the majority answer among the first k samples is correct.

    ``answers`` are the extracted answers (None when missing) and ``correct`` the per-sample grades
    against gold; answers are clustered by ``equivalent`` (math-verify by default) so "1/2" and
    "0.5" vote together. The majority cluster's correctness is that of its first member (all members
    are equivalent to it). Samples without an answer do not vote; no answer at all scores 0.
    """
    if len(answers) != len(correct):
        raise ValueError(f"maj_at_k: {len(answers)} answers but {len(correct)} grades")
    if k is not None:
        if k < 1 or k > len(answers):
            raise ValueError(f"maj_at_k: k={k} outside 1..{len(answers)}")
        answers, correct = answers[:k], correct[:k]
    idx, _ = majority_answer(answers, equivalent)
    return 0.0 if idx is None else float(bool(correct[idx]))


def macro_average(per_dataset: Mapping[str, float]) -> float:
    """Unweighted mean of per-dataset scores (each benchmark counts once, whatever its size)."""
    if not per_dataset:
        raise ValueError("macro_average: no datasets")
    vals = [float(v) for v in per_dataset.values()]
    if any(math.isnan(v) for v in vals):
        raise ValueError(f"macro_average: NaN score in {dict(per_dataset)}")
    return sum(vals) / len(vals)
