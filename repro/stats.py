"""Statistics across seeds: mean, interquartile mean and stratified bootstrap confidence intervals.

This follows the recommendations and the estimators of Agarwal et al., "Deep Reinforcement
Learning at the Edge of the Statistical Precipice" (NeurIPS 2021), as implemented in their
`rliable` library (now archived):

* scores are arranged as a *runs x tasks* matrix (here: seeds x datasets / MetaWorld tasks);
* the aggregate point estimates are the mean and the interquartile mean (IQM), both taken over
  all ``runs * tasks`` scores at once (IQM = ``scipy.stats.trim_mean(scores, 0.25, axis=None)``);
* the confidence interval is a *stratified* bootstrap: each replicate resamples, independently
  inside every task, that task's runs with replacement (the task set itself is never
  resampled), recomputes the aggregate, and the interval is the percentile interval of the
  replicates (``method='percentile'`` in rliable; 2.5th and 97.5th percentiles for 95%).

Tasks may have different numbers of runs ("ragged" input, a list of 1-D arrays): the stratified
resampling is then done per task with that task's own run count, which for rectangular input is
exactly rliable's scheme. Everything is deterministic given ``seed``.

Checked against rliable 1.2.0 itself (tests/test_report_stats.py::test_matches_rliable_when_installed,
skipped unless rliable is importable): identical point estimates and CI end points within Monte-Carlo
error (largest difference 0.002 at 20,000 replicates on (runs, tasks) = (3,1), (5,2), (10,4), (4,6), (2,3)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats as _sps

__all__ = [
    "Summary",
    "as_strata",
    "iqm",
    "mean",
    "stratified_bootstrap",
    "stratified_bootstrap_ci",
    "summarize",
]

Strata = list[np.ndarray]


def as_strata(scores) -> Strata:
    """Normalise scores to a list of 1-D float arrays, one per task (stratum).

    Accepts a 1-D array (one task, its runs), a 2-D array of shape (runs, tasks) as in rliable,
    or a sequence of 1-D arrays (ragged: tasks with different numbers of runs).
    Raises ValueError on empty strata or non-finite values.
    """
    if isinstance(scores, np.ndarray) or (
        isinstance(scores, Sequence) and scores and np.isscalar(scores[0])
    ):
        arr = np.asarray(scores, dtype=float)
        if arr.ndim == 1:
            strata = [arr]
        elif arr.ndim == 2:
            strata = [arr[:, j] for j in range(arr.shape[1])]
        else:
            raise ValueError(f"scores must be 1-D (runs) or 2-D (runs, tasks); got shape {arr.shape}")
    else:
        strata = [np.asarray(s, dtype=float).reshape(-1) for s in scores]
    if not strata:
        raise ValueError("scores: no tasks given")
    for j, s in enumerate(strata):
        if s.size == 0:
            raise ValueError(f"scores: task {j} has no runs")
        if not np.all(np.isfinite(s)):
            raise ValueError(f"scores: task {j} contains non-finite values {s.tolist()}")
    return strata


def mean(scores) -> float:
    """Mean over all runs of all tasks (rliable's ``aggregate_mean`` for rectangular input)."""
    return float(np.mean(np.concatenate(as_strata(scores))))


def iqm(scores) -> float:
    """Interquartile mean over all runs of all tasks (Agarwal et al. 2021, Sec. 4.2).

    The mean of the middle 50% of the pooled scores: ``scipy.stats.trim_mean(x, 0.25)``, which
    drops ``floor(0.25 * n)`` scores at each end (with n < 4 nothing is dropped: IQM = mean).
    """
    return float(_sps.trim_mean(np.concatenate(as_strata(scores)), 0.25))


def _pooled_stat(fn: Callable[[np.ndarray], float]) -> Callable[[np.ndarray], np.ndarray]:
    """Lift a statistic of pooled scores to a batch of replicates of shape (reps, n_pooled)."""

    def batched(x: np.ndarray) -> np.ndarray:
        return np.asarray([fn(row) for row in x], dtype=float)

    return batched


def _batched_mean(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=1)


def _batched_iqm(x: np.ndarray) -> np.ndarray:
    return _sps.trim_mean(x, 0.25, axis=1)


_BATCHED = {"mean": _batched_mean, "iqm": _batched_iqm}


def stratified_bootstrap(
    scores, statistic: str | Callable[[np.ndarray], float] = "mean", reps: int = 2000, seed: int = 0
) -> np.ndarray:
    """Bootstrap distribution of a pooled statistic under stratified resampling.

    Args:
        scores: see :func:`as_strata`; runs are resampled within each task.
        statistic: ``"mean"``, ``"iqm"`` or a function of the pooled 1-D scores -> float.
        reps: number of bootstrap replicates.
        seed: seed of the numpy Generator (PCG64).
    Returns:
        array of shape (reps,): the statistic on each replicate.
    """
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    strata = as_strata(scores)
    rng = np.random.default_rng(seed)
    # Resample each stratum's runs with replacement; concatenate strata -> (reps, n_pooled).
    parts = [s[rng.integers(0, s.size, size=(reps, s.size))] for s in strata]
    pooled = np.concatenate(parts, axis=1)
    if isinstance(statistic, str):
        if statistic not in _BATCHED:
            raise ValueError(f"statistic must be one of {sorted(_BATCHED)} or a callable; got {statistic!r}")
        fn = _BATCHED[statistic]
    else:
        fn = _pooled_stat(statistic)
    return fn(pooled)


def stratified_bootstrap_ci(
    scores,
    statistic: str | Callable[[np.ndarray], float] = "mean",
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile confidence interval of a statistic from a stratified bootstrap (rliable's method).

    Returns ``(low, high)`` = the ``(1-confidence)/2`` and ``(1+confidence)/2`` quantiles (numpy's
    default linear interpolation) of :func:`stratified_bootstrap`'s replicates.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    dist = stratified_bootstrap(scores, statistic, reps=reps, seed=seed)
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(dist, [tail, 100.0 - tail])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Summary:
    """Seed statistics of one quantity: n runs, mean, IQM and (when n_runs >= 2) a bootstrap CI."""

    n: int  # number of scores pooled (runs x tasks)
    n_runs: int  # smallest number of runs over the tasks
    mean: float  # mean of all scores
    iqm: float  # interquartile mean of all scores
    ci_low: float | None  # CI of the mean (None with < 2 runs)
    ci_high: float | None
    iqm_ci_low: float | None  # CI of the IQM (None with < 2 runs)
    iqm_ci_high: float | None


def summarize(scores, reps: int = 2000, confidence: float = 0.95, seed: int = 0) -> Summary:
    """Mean, IQM and their stratified bootstrap CIs; CIs only where every task has >= 2 runs."""
    strata = as_strata(scores)
    n_runs = min(s.size for s in strata)
    m, q = mean(strata), iqm(strata)
    if n_runs >= 2:
        lo, hi = stratified_bootstrap_ci(strata, "mean", reps, confidence, seed)
        qlo, qhi = stratified_bootstrap_ci(strata, "iqm", reps, confidence, seed)
    else:
        lo = hi = qlo = qhi = None
    return Summary(sum(s.size for s in strata), n_runs, m, q, lo, hi, qlo, qhi)
