"""The empirical entropy-performance law R = -a * exp(H) + b (Cui et al., 2025, arXiv 2505.22617, Sec. 2.3).

``H`` is policy entropy and ``R`` validation performance, logged at the same training steps. The fit is
linear least squares in ``(a, b)`` on the regressor ``x = exp(H)``; the predicted performance ceiling, when
entropy is exhausted (H = 0), is ``b - a``. The paper's predictability claim: a fit on the first ~15% of
the logged points predicts the rest; ``early_fit`` reports the RMSE of that extrapolation.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["fit_entropy_law", "predict", "predicted_ceiling", "early_fit", "pair_with_rollout_entropy"]


def pair_with_rollout_entropy(entropy: dict[int, float], score: dict[int, float], steps_per_rollout: int = 1
                              ) -> tuple[list[float], list[float], list[int]]:
    """The law's (H, R, step) points: each validation score with the entropy of the policy that was validated.

    Args:
        entropy: {optimiser step s: token-mean entropy logged with s}. A step's metrics are measured during its
            forward passes, i.e. on the policy *before* update s, so step s + 1 logs the policy validated at s.
        score: {optimiser step v: validation score after v updates} (v = 0: before training).
        steps_per_rollout: k optimiser steps (mini-batches) fed by each rollout; steps j*k + 1 .. (j+1)*k are
            rollout j's. H of a validation at v is the mean over the k steps of the first rollout that the
            validated policy generated (rollout ceil(v / k)): one entropy per rollout over its whole batch, as the
            official code logs it (Entropy-Mechanism-of-RL, verl/trainer/ppo/ray_trainer.py:1017-1025, the batch's
            entropy under the rollout policy). The mean of the k mini-batch means stands in for that token mean
            (the later mini-batches are read after 1..k-1 updates of the same rollout's data). k = 1 pairs v with
            step v + 1. The official log row is one update apart: it holds step s's entropy (the policy before
            update s) with the validation after update s (same file, lines 1083-1132); here both are one policy.

    A validation after the last rollout has no rollout of its own and takes the last one (one rollout older);
    a rollout with no logged step is skipped. Returns (H, R, step) lists in step order.
    """
    if steps_per_rollout < 1:
        raise ValueError(f"steps_per_rollout must be >= 1, got {steps_per_rollout}")
    if not entropy:
        raise ValueError("pair_with_rollout_entropy: no entropy rows")
    k = int(steps_per_rollout)
    last_rollout = (max(entropy) - 1) // k
    h, r, steps = [], [], []
    for v in sorted(score):
        j = min(-(-v // k), last_rollout)
        block = [entropy[s] for s in range(j * k + 1, (j + 1) * k + 1) if s in entropy]
        if not block:
            continue
        h.append(float(np.mean(block)))
        r.append(float(score[v]))
        steps.append(int(v))
    return h, r, steps


def _arrays(entropy: Sequence[float], score: Sequence[float], where: str) -> tuple[np.ndarray, np.ndarray]:
    h = np.asarray(entropy, dtype=np.float64).reshape(-1)
    r = np.asarray(score, dtype=np.float64).reshape(-1)
    if h.shape != r.shape:
        raise ValueError(f"{where}: entropy has {h.size} points but score has {r.size}")
    if not (np.isfinite(h).all() and np.isfinite(r).all()):
        raise ValueError(f"{where}: entropy/score contain NaN or inf")
    return h, r


def fit_entropy_law(entropy: Sequence[float], score: Sequence[float]) -> tuple[float, float]:
    """Least-squares ``(a, b)`` of ``R = -a * exp(H) + b``.

    Args: entropy (N,) and score (N,) — paired points from one or several runs of one model.
    Returns: (a, b) as floats. Raises ValueError for < 2 points, non-finite values or constant entropy
    (the slope is then undetermined).
    """
    h, r = _arrays(entropy, score, "fit_entropy_law")
    if h.size < 2:
        raise ValueError(f"fit_entropy_law: need at least 2 points, got {h.size}")
    x = np.exp(h)
    if np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())):
        raise ValueError("fit_entropy_law: entropy is constant, the law's slope a is undetermined")
    design = np.stack([-x, np.ones_like(x)], axis=1)  # R = a * (-e^H) + b * 1
    (a, b), *_ = np.linalg.lstsq(design, r, rcond=None)
    return float(a), float(b)


def predict(entropy: Sequence[float] | float, a: float, b: float) -> np.ndarray:
    """R(H) = -a * exp(H) + b, elementwise."""
    return -a * np.exp(np.asarray(entropy, dtype=np.float64)) + b


def predicted_ceiling(a: float, b: float) -> float:
    """Performance at zero entropy, ``R(0) = b - a``."""
    return float(b - a)


def early_fit(entropy: Sequence[float], score: Sequence[float], frac: float = 0.15,
              min_points: int = 3) -> dict[str, float]:
    """Fit on the first ``max(min_points, ceil(frac * N))`` points (in logging order), predict the rest.

    Returns ``{"a", "b", "ceiling", "rmse", "n_fit", "n_test"}`` where ``rmse`` is the root-mean-square error
    of the prediction on the held-out later points. Raises ValueError if fewer than one point is left over.
    """
    if not 0.0 < frac < 1.0:
        raise ValueError(f"early_fit: frac must be in (0, 1), got {frac}")
    h, r = _arrays(entropy, score, "early_fit")
    n_fit = max(int(min_points), math.ceil(frac * h.size))
    if n_fit >= h.size:
        raise ValueError(f"early_fit: {h.size} points leave nothing to predict after fitting on {n_fit}")
    a, b = fit_entropy_law(h[:n_fit], r[:n_fit])
    err = predict(h[n_fit:], a, b) - r[n_fit:]
    return {"a": a, "b": b, "ceiling": predicted_ceiling(a, b), "rmse": float(np.sqrt(np.mean(err ** 2))),
            "n_fit": float(n_fit), "n_test": float(h.size - n_fit)}
