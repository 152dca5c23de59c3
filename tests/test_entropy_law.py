"""The entropy-performance law: the fit recovers known (a, b); early-fit extrapolation; clear errors."""
from __future__ import annotations

import numpy as np
import pytest

from methods.entropy_mechanism.law import early_fit, fit_entropy_law, predict, predicted_ceiling


@pytest.mark.parametrize("seed", range(5))
def test_fit_recovers_known_parameters(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0.05, 0.5), rng.uniform(0.5, 1.0)
    h = np.sort(rng.uniform(0.05, 1.5, size=40))[::-1]  # entropy falling during training
    r = -a * np.exp(h) + b
    a_hat, b_hat = fit_entropy_law(h, r)
    assert a_hat == pytest.approx(a, rel=1e-9) and b_hat == pytest.approx(b, rel=1e-9)
    # with noise: still close, and the ceiling is b - a
    noisy = r + rng.normal(0, 0.005, size=r.shape)
    a_n, b_n = fit_entropy_law(h, noisy)
    assert abs(a_n - a) < 0.03 and abs(b_n - b) < 0.05
    assert predicted_ceiling(a, b) == pytest.approx(b - a)
    np.testing.assert_allclose(predict(0.0, a, b), b - a)


def test_fit_matches_normal_equations():
    rng = np.random.default_rng(0)
    h, r = rng.uniform(0, 2, 25), rng.uniform(0, 1, 25)
    x = np.exp(h)
    # closed-form simple regression of r on x: slope = cov(x, r)/var(x) = -a, intercept = b
    slope = np.sum((x - x.mean()) * (r - r.mean())) / np.sum((x - x.mean()) ** 2)
    a, b = fit_entropy_law(h, r)
    assert a == pytest.approx(-slope, rel=1e-10)
    assert b == pytest.approx(r.mean() - slope * x.mean(), rel=1e-10)


def test_early_fit_extrapolates_an_exact_law():
    h = np.linspace(1.2, 0.1, 60)
    r = -0.2 * np.exp(h) + 0.9
    out = early_fit(h, r, frac=0.15)
    assert out["n_fit"] == 9 and out["n_test"] == 51
    assert out["rmse"] < 1e-9 and out["ceiling"] == pytest.approx(0.7)
    # a wrong functional form (linear in H) gives a visibly larger extrapolation error
    out_lin = early_fit(h, 0.9 - 0.3 * h + 0.2 * (h < 0.5), frac=0.15)
    assert out_lin["rmse"] > 0.05


def test_law_errors():
    with pytest.raises(ValueError, match="at least 2"):
        fit_entropy_law([0.5], [0.3])
    with pytest.raises(ValueError, match="constant"):
        fit_entropy_law([0.5, 0.5, 0.5], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        fit_entropy_law([0.5, float("nan")], [0.1, 0.2])
    with pytest.raises(ValueError, match="points but"):
        fit_entropy_law([0.5, 0.4], [0.1])
    with pytest.raises(ValueError, match="nothing to predict"):
        early_fit([0.5, 0.4, 0.3], [0.1, 0.2, 0.3])


def test_fit_law_entry_point_pairs_validation_with_next_step_entropy(tmp_path):
    import json

    from methods.entropy_mechanism.fit_law import law_points, main

    a, b = 0.3, 0.95
    runs = []
    for seed in (0, 1):
        run = tmp_path / f"seed{seed}"
        run.mkdir()
        ent = {s: 1.2 * np.exp(-0.1 * s) + 0.01 * seed for s in range(1, 41)}  # entropy logged with step s
        lines = [{"step": s, "entropy": e, "reward": 0.5} for s, e in ent.items()]
        for v in range(0, 41, 2):  # validation after v updates: the policy whose entropy step v+1 logs
            h = ent.get(v + 1, ent[40])
            lines.append({"step": v, "val/acc": -a * np.exp(h) + b})
        (run / "train_log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        runs.append(str(run))
    h, r, steps = law_points(tmp_path / "seed0" / "train_log.jsonl")
    assert steps[0] == 0 and len(h) == 21
    assert main(["--runs", ",".join(runs), "--seeds", "0,1", "--out", str(tmp_path / "law"),
                 "--dataset", "arith_test"]) == 0
    rows = json.loads((tmp_path / "law" / "metrics.json").read_text())["rows"]
    got = {(r["metric"], r["seed"]): r["value"] for r in rows}
    assert got[("law_a", None)] == pytest.approx(a, rel=1e-6)
    assert got[("law_b", None)] == pytest.approx(b, rel=1e-6)
    assert got[("law_ceiling", None)] == pytest.approx(b - a, rel=1e-6)
    assert got[("law_early_fit_rmse", 0)] < 1e-8 and got[("law_n_points", None)] == 42
