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

__all__ = ["fit_entropy_law", "predict", "predicted_ceiling", "early_fit"]


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
