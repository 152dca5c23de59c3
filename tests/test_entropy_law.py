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


@pytest.mark.parametrize("seed", range(4))
def test_rollout_pairing_averages_the_validated_policys_rollout(seed):
    """Each validation at v takes the mean entropy of rollout ceil(v / k) (its k logged steps); k = 1 is the
    score at v with the entropy at v + 1; after the last rollout the last one is used."""
    from methods.entropy_mechanism.law import pair_with_rollout_entropy

    rng = np.random.default_rng(seed)
    k, n_rollouts = int(rng.integers(1, 5)), int(rng.integers(3, 8))
    entropy = {s: float(rng.uniform(0.01, 1.0)) for s in range(1, k * n_rollouts + 1)}
    every = int(rng.integers(1, 2 * k + 1))
    score = {v: float(rng.uniform()) for v in range(0, k * n_rollouts + 1, every)}
    h, r, steps = pair_with_rollout_entropy(entropy, score, k)
    assert steps == sorted(score) and r == [score[v] for v in steps]
    for v, hv in zip(steps, h):
        j = min(-(-v // k), n_rollouts - 1)
        assert hv == pytest.approx(np.mean([entropy[s] for s in range(j * k + 1, (j + 1) * k + 1)]), abs=1e-12)
    h1, _, _ = pair_with_rollout_entropy(entropy, score, 1)
    last = max(entropy)
    assert h1 == [entropy.get(v + 1, entropy[last]) for v in steps]
    with pytest.raises(ValueError, match="steps_per_rollout"):
        pair_with_rollout_entropy(entropy, score, 0)


def test_fit_law_pairs_each_validation_with_its_rollout_and_the_report_agrees(tmp_path):
    """With 4 optimiser steps per rollout the law sees the rollout means: an exact law on those means is
    recovered, the k row is written, and the report's table-side pairing gives the same points."""
    import json

    import pandas as pd

    from methods.entropy_mechanism.fit_law import law_points, main
    from repro.report.tables import law_pairs

    a, b, k = 0.4, 1.1, 4
    rng = np.random.default_rng(0)
    ent = {s: 0.5 * np.exp(-0.05 * s) + rng.uniform(-0.05, 0.05) for s in range(1, 41)}
    lines = [{"step": s, "entropy": e} for s, e in ent.items()]
    for v in range(0, 41, 4):
        j = min(v // k, 9)
        h = np.mean([ent[s] for s in range(j * k + 1, j * k + k + 1)])
        lines.append({"step": v, "val/acc": -a * np.exp(h) + b})
    run = tmp_path / "seed0"
    run.mkdir()
    (run / "train_log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert main(["--runs", str(run), "--seeds", "0", "--steps-per-rollout", "4", "--out", str(tmp_path / "law")]) == 0
    rows = json.loads((tmp_path / "law" / "metrics.json").read_text())["rows"]
    got = {r["metric"]: r["value"] for r in rows if r["seed"] is None}
    assert got["law_a"] == pytest.approx(a, rel=1e-6) and got["law_b"] == pytest.approx(b, rel=1e-6)
    assert got["law_steps_per_rollout"] == 4 and got["law_fit_rmse"] < 1e-9
    table = pd.DataFrame([{"method": "grpo", "seed": 0, "step": s, "metric": "entropy", "value": e, "dataset": "t"}
                          for s, e in ent.items()]
                         + [{"method": "grpo", "seed": 0, "step": x["step"], "metric": "val_acc", "value": x["val/acc"],
                             "dataset": "v"} for x in lines if "val/acc" in x]
                         + [{"method": "grpo", "seed": None, "step": -1, "metric": "law_steps_per_rollout",
                             "value": 4.0, "dataset": "v"}])
    steps, h, r = law_pairs(table, "grpo")[0]
    h_log, r_log, steps_log = law_points(run / "train_log.jsonl", steps_per_rollout=4)
    assert list(steps) == steps_log
    np.testing.assert_allclose(h, h_log, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r, r_log, rtol=0, atol=1e-12)
