"""repro.stats against reference computations: exact enumeration of the bootstrap distribution,
scipy.stats.bootstrap (which resamples several samples independently = stratified), and IQM by hand."""

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from repro import stats


def _iqm_by_hand(x):
    x = np.sort(np.asarray(x, dtype=float).ravel())
    k = len(x) // 4  # scores dropped at each end
    return x[k:len(x) - k].mean()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 13, 40])
def test_iqm_matches_hand_computation(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=n)
    assert stats.iqm(x) == pytest.approx(_iqm_by_hand(x), rel=1e-12)
    assert stats.mean(x) == pytest.approx(x.mean(), rel=1e-12)


def test_iqm_pools_runs_and_tasks_and_ignores_outliers():
    scores = np.array([[0.1, 0.5], [0.2, 0.6], [0.3, 100.0], [0.4, -100.0]])  # (runs, tasks)
    assert stats.iqm(scores) == pytest.approx(_iqm_by_hand(scores))
    assert abs(stats.iqm(scores)) < 1.0 < abs(stats.mean(scores) * 10)
    # 2-D (runs, tasks) and a list of per-task arrays are the same data
    assert stats.iqm([scores[:, 0], scores[:, 1]]) == stats.iqm(scores)


def _exact_distribution(strata, fn):
    """All equally likely stratified resamples: each task's runs drawn with replacement."""
    per_task = [list(itertools.product(s, repeat=len(s))) for s in strata]
    vals = [fn(np.concatenate([np.asarray(c) for c in combo])) for combo in itertools.product(*per_task)]
    return np.sort(np.asarray(vals))


def _exact_quantile(sorted_vals, q):
    """Inverse CDF of the discrete distribution (lower quantile)."""
    idx = int(np.ceil(q * len(sorted_vals))) - 1
    return sorted_vals[max(idx, 0)]


@pytest.mark.parametrize("statistic,fn", [("mean", np.mean), ("iqm", _iqm_by_hand)])
def test_bootstrap_distribution_matches_exact_enumeration(statistic, fn):
    strata = [np.array([0.0, 1.0, 3.0]), np.array([2.0, 2.5, 7.0])]  # 27 x 27 = 729 resamples
    exact = _exact_distribution(strata, fn)
    boot = stratified_draws = stats.stratified_bootstrap(strata, statistic, reps=40000, seed=1)
    assert stratified_draws.shape == (40000,)
    # CDF of the replicates vs the exact CDF at every atom (Kolmogorov distance)
    atoms = np.unique(exact)
    exact_cdf = np.searchsorted(exact, atoms, side="right") / len(exact)
    boot_cdf = np.searchsorted(np.sort(boot), atoms, side="right") / len(boot)
    assert np.max(np.abs(exact_cdf - boot_cdf)) < 0.012
    # the CI end points land on (or between neighbouring atoms of) the exact quantiles
    lo, hi = stats.stratified_bootstrap_ci(strata, statistic, reps=40000, seed=1)
    for got, q in ((lo, 0.025), (hi, 0.975)):
        i = np.searchsorted(atoms, _exact_quantile(exact, q))
        neighbours = atoms[max(i - 1, 0): i + 2]
        assert neighbours.min() - 1e-12 <= got <= neighbours.max() + 1e-12


def test_ci_matches_scipy_percentile_bootstrap_single_and_stratified():
    rng = np.random.default_rng(7)
    a, b = rng.normal(0.5, 0.1, size=6), rng.normal(0.2, 0.3, size=6)
    # one task: scipy's percentile bootstrap of the mean
    ref = sps.bootstrap((a,), np.mean, n_resamples=20000, method="percentile", confidence_level=0.95,
                        rng=np.random.default_rng(0)).confidence_interval
    lo, hi = stats.stratified_bootstrap_ci(a, "mean", reps=20000, seed=3)
    assert lo == pytest.approx(ref.low, abs=0.006) and hi == pytest.approx(ref.high, abs=0.006)

    # two tasks: scipy resamples each sample independently (paired=False) = stratified bootstrap
    def pooled_mean(x, y, axis=-1):
        return np.concatenate([x, y], axis=axis).mean(axis=axis)

    ref2 = sps.bootstrap((a, b), pooled_mean, n_resamples=20000, method="percentile", confidence_level=0.95,
                         rng=np.random.default_rng(0)).confidence_interval
    lo2, hi2 = stats.stratified_bootstrap_ci([a, b], "mean", reps=20000, seed=3)
    assert lo2 == pytest.approx(ref2.low, abs=0.006) and hi2 == pytest.approx(ref2.high, abs=0.006)


def test_stratification_never_mixes_tasks():
    # each task is constant: any stratified resample has pooled mean exactly 0.5 (an iid bootstrap
    # over the pooled 6 scores would not)
    lo, hi = stats.stratified_bootstrap_ci([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], "mean", reps=500, seed=0)
    assert lo == pytest.approx(0.5) and hi == pytest.approx(0.5)


def test_ragged_strata_and_custom_statistic():
    strata = [np.array([1.0, 2.0]), np.array([5.0, 6.0, 7.0, 9.0])]
    exact = _exact_distribution(strata, np.median)
    boot = stats.stratified_bootstrap(strata, np.median, reps=20000, seed=2)
    assert np.mean(boot) == pytest.approx(exact.mean(), abs=0.03)


def test_deterministic_and_seed_dependent():
    x = np.random.default_rng(0).normal(size=5)
    assert stats.stratified_bootstrap_ci(x, seed=4) == stats.stratified_bootstrap_ci(x, seed=4)
    assert stats.stratified_bootstrap_ci(x, seed=4) != stats.stratified_bootstrap_ci(x, seed=5)


def test_summarize_ci_only_with_two_runs():
    one = stats.summarize([0.7])
    assert one.mean == 0.7 and one.ci_low is None and one.iqm_ci_high is None and one.n_runs == 1
    s = stats.summarize([0.1, 0.4, 0.9], reps=1000, seed=0)
    assert s.n_runs == 3 and s.ci_low <= s.mean <= s.ci_high
    assert (s.ci_low, s.ci_high) == stats.stratified_bootstrap_ci([0.1, 0.4, 0.9], "mean", 1000, 0.95, 0)
    # a task with one run makes the whole aggregate CI-less
    assert stats.summarize([[0.1, 0.2], [0.3]]).ci_low is None


@pytest.mark.parametrize("bad", [[], [[1.0], []], [1.0, float("nan")], np.zeros((2, 2, 2))])
def test_bad_input_is_a_clear_error(bad):
    with pytest.raises(ValueError):
        stats.stratified_bootstrap_ci(bad)
    with pytest.raises(ValueError):
        stats.stratified_bootstrap_ci([1.0, 2.0], confidence=1.5)


def test_matches_rliable_when_installed():
    """Against rliable itself (archived; not a dependency: skipped unless importable). Checked once by
    hand with rliable 1.2.0 + arch 8.0.0: identical point estimates, CI end points within 0.002."""
    arch_base = pytest.importorskip("arch.bootstrap.base")
    init = arch_base.IIDBootstrap.__init__
    if "random_state" not in init.__code__.co_varnames:  # arch >= 8 renamed rliable's keyword to `seed`
        def shim(self, *args, random_state=None, **kw):
            init(self, *args, seed=random_state, **kw)

        arch_base.IIDBootstrap.__init__ = shim
    try:
        rly = pytest.importorskip("rliable.library")
        rmetrics = pytest.importorskip("rliable.metrics")
        x = np.random.default_rng(0).normal(0.5, 0.2, size=(6, 3))
        for name, fn in (("mean", rmetrics.aggregate_mean), ("iqm", rmetrics.aggregate_iqm)):
            pt, ci = rly.get_interval_estimates({"m": x}, lambda s: np.array([fn(s)]), reps=20000,
                                                random_state=np.random.default_rng(0))
            ours = stats.mean(x) if name == "mean" else stats.iqm(x)
            assert ours == pytest.approx(pt["m"][0], rel=1e-12)
            lo, hi = stats.stratified_bootstrap_ci(x, name, reps=20000, seed=1)
            assert lo == pytest.approx(ci["m"][0, 0], abs=0.01) and hi == pytest.approx(ci["m"][1, 0], abs=0.01)
    finally:
        arch_base.IIDBootstrap.__init__ = init
