"""Variance-based prompt selection of One-shot EM (Gao et al., 2025, arXiv 2505.20282, Sec. 2.2).

For each candidate prompt draw k samples from the model, grade each against the prompt's answer
(selection is the only step that uses answers), p = mean success, score = p (1 - p). The prompt
with the largest score sits at the model's "capability edge". The public code never shipped this
step; here it works for any pool, k and temperature. A fixed prompt can be used instead (train.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

__all__ = ["variance_score", "ScoredPrompt", "rank_by_variance", "rank_pool_with_model"]


def variance_score(successes: Sequence[bool | int | float]) -> float:
    """p (1 - p) with p the mean of k 0/1 successes (Bernoulli variance); 0 for k = 0."""
    k = len(successes)
    if k == 0:
        return 0.0
    p = sum(float(s) for s in successes) / k
    return p * (1.0 - p)


@dataclass
class ScoredPrompt:
    row: dict  # the pool row (id, source, problem, answer, ...)
    score: float  # p (1 - p)
    accuracy: float  # p
    successes: list  # the k graded samples
    completions: list = field(default_factory=list)  # their texts (when the ranking was given them)


def rank_by_variance(pool: Sequence[dict], successes: Sequence[Sequence[bool]], top: int | None = None,
                     completions: Sequence[Sequence[str]] | None = None) -> list[ScoredPrompt]:
    """Rank pool rows by variance score, descending; ties keep pool order (deterministic).

    Args:
        pool: N rows.
        successes: N lists of k graded samples, aligned with ``pool``.
        top: keep the best ``top`` (None = all).
        completions: optionally the N lists of sample texts, kept with each prompt (for diagnostics).
    """
    if len(pool) != len(successes):
        raise ValueError(f"pool has {len(pool)} rows but {len(successes)} success lists were given")
    texts = [list(c) for c in completions] if completions is not None else [[] for _ in pool]
    if len(texts) != len(pool):
        raise ValueError(f"pool has {len(pool)} rows but {len(texts)} completion lists were given")
    scored = [ScoredPrompt(row=dict(r), score=variance_score(s), accuracy=(sum(map(float, s)) / len(s)) if len(s) else 0.0,
                           successes=[bool(x) for x in s], completions=c) for r, s, c in zip(pool, successes, texts)]
    order = sorted(range(len(scored)), key=lambda i: (-scored[i].score, i))
    ranked = [scored[i] for i in order]
    return ranked if top is None else ranked[:top]


def rank_pool_with_model(
    pool: Sequence[dict],
    sample: Callable[[list[str], int, float, int], list[list[str]]],
    grade: Callable[[list[tuple[str, str]]], list[bool]],
    k: int = 8,
    temperature: float = 1.0,
    seed: int = 0,
    top: int | None = 1,
) -> list[ScoredPrompt]:
    """Sample k completions per pool problem, grade them, rank by variance.

    Args:
        pool: rows with keys ``problem`` and ``answer``.
        sample: (problems, k, temperature, seed) -> per problem a list of k completion texts
            (e.g. ``benchmarks.math.generation.generate`` wrapped with a model and a prompt template).
        grade: list of (completion, gold) pairs -> list of bools (e.g. ``grade_many``).
    """
    for i, r in enumerate(pool):
        if "problem" not in r or "answer" not in r:
            raise ValueError(f"pool row {i} (id={r.get('id')!r}) lacks 'problem' or 'answer'")
    completions = sample([r["problem"] for r in pool], k, temperature, seed)
    if len(completions) != len(pool):
        raise ValueError(f"sampler returned {len(completions)} groups for {len(pool)} problems")
    pairs = [(c, str(r["answer"])) for r, comps in zip(pool, completions) for c in comps]
    flat = grade(pairs)
    successes, i = [], 0
    for comps in completions:
        successes.append(list(flat[i : i + len(comps)]))
        i += len(comps)
    return rank_by_variance(pool, successes, top, completions)
