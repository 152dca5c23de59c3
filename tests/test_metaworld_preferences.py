"""Preference teachers and segment sampling (pure functions)."""
import numpy as np
import pytest

from benchmarks.metaworld.preferences import (discounted_returns, label_dataset, labels_from_scores, make_pairs,
                                              regret_scores, sample_segments, segment_index)


def test_discounted_returns_and_regret_scores_match_direct_sums():
    rng = np.random.default_rng(0)
    r = rng.normal(size=12)
    g = discounted_returns(r, 0.9, tail=2.0)
    for t in range(12):
        direct = sum(0.9**k * r[t + k] for k in range(12 - t)) + 0.9 ** (12 - t) * 2.0
        assert g[t] == pytest.approx(direct)
    rew = rng.normal(size=(5, 7))
    v0, vL = rng.normal(size=5), rng.normal(size=5)
    s = regret_scores(rew, v0, vL, 0.95)
    for i in range(5):
        direct = sum(0.95**t * rew[i, t] for t in range(7)) + 0.95**7 * vL[i] - v0[i]
        assert s[i] == pytest.approx(direct)


def test_labels_and_ties():
    y = labels_from_scores(np.array([1.0, 2.0, 3.0]), np.array([2.0, 1.0, 3.0]))
    np.testing.assert_array_equal(y, [1.0, 0.0, 0.5])


@pytest.mark.parametrize("mode,per_segment", [("sparse", 1), ("dense", 3)])
def test_pairs_dense_and_sparse(mode, per_segment):
    p = make_pairs(40, mode, 3, np.random.default_rng(1))
    assert p.shape == (20 * per_segment, 2) and (p[:, 0] != p[:, 1]).all()
    np.testing.assert_array_equal(np.bincount(p.ravel(), minlength=40), per_segment)
    with pytest.raises(ValueError, match="dense, sparse"):
        make_pairs(4, "medium", 1, np.random.default_rng(0))


def _fake_data(n_eps=6, T=100, seed=0):
    rng = np.random.default_rng(seed)
    N = n_eps * T
    return {"rewards": rng.uniform(0, 10, N), "observations": rng.normal(size=(N, 39)),
            "episodes": {"start": np.arange(n_eps) * T, "length": np.full(n_eps, T)}}


def test_segments_stay_inside_episodes():
    d = _fake_data()
    ep, st = sample_segments(d["episodes"], 500, 64, np.random.default_rng(0))
    idx = segment_index(d["episodes"], ep, st, 64)
    assert (idx[:, -1] + 1 < (ep + 1) * 100).all()  # s_L exists in the same episode
    assert (idx[:, 0] >= ep * 100).all()


def test_return_and_regret_teachers():
    d = _fake_data()
    p = label_dataset(d, 30, 64, "return", "dense", 2, seed=3)
    idx = segment_index(d["episodes"], p["seg_episode"], p["seg_start"], 64)
    np.testing.assert_allclose(p["score"], d["rewards"][idx].sum(-1))
    s = p["score"][p["pairs"]]
    np.testing.assert_array_equal(p["label"], (s[:, 0] < s[:, 1]).astype(float))
    # regret teacher with a value function that is a known function of the observation
    value = lambda obs: obs[:, 0] * 10.0  # noqa: E731
    q = label_dataset(d, 30, 64, "regret", "sparse", 1, value_fn=value, gamma=0.99, seed=3)
    idx = segment_index(d["episodes"], q["seg_episode"], q["seg_start"], 64)
    direct = (d["rewards"][idx] * 0.99 ** np.arange(64)).sum(-1) + 0.99**64 * value(d["observations"][idx[:, -1] + 1]) \
        - value(d["observations"][idx[:, 0]])
    np.testing.assert_allclose(q["score"], direct)
    with pytest.raises(ValueError, match="oracle value"):
        label_dataset(d, 10, 64, "regret")
    with pytest.raises(ValueError, match="regret, return"):
        label_dataset(d, 10, 64, "oracle")
