"""MetaWorld envs, labelled behaviour policies and the HDF5 dataset format."""
import h5py
import numpy as np
import pytest

from benchmarks.metaworld.collect import (DatasetError, STEP_KEYS, episodes_to_arrays, load_dataset,
                                          write_dataset)
from benchmarks.metaworld.envs import TASKS, check_task, make_env, reset_episode
from benchmarks.metaworld.policies import (BehaviourPolicy, BehaviourSpec, gaussian_log_prob_np, rollout,
                                           run_episodes)


def test_unknown_task_lists_valid_ones():
    with pytest.raises(ValueError, match="door-open.*sweep-into|valid tasks"):
        check_task("door-opn")
    with pytest.raises(ValueError, match="bin-picking"):
        make_env("nope")


def test_reset_is_determined_by_episode_seed_alone():
    # two separate envs (as in two worker processes), with different histories
    e1, e2 = make_env("door-open", seed=0), make_env("door-open", seed=0)
    o1, _ = reset_episode(e1, 42)
    reset_episode(e2, 7)
    e2.step(np.ones(4, dtype=np.float32))
    o2, _ = reset_episode(e2, 42)
    np.testing.assert_array_equal(o1, o2)
    o3, _ = reset_episode(e1, 43)
    assert np.abs(o1 - o3).max() > 1e-6  # a different seed gives a different layout


def _episodes(spec, seeds, horizon=60):
    return [rollout(spec, s, record=True, horizon=horizon) for s in seeds]


def test_policy_labels_are_exact():
    spec = BehaviourSpec("button-press", 0.4, 0.3, 1, policy_id=3)
    ep = _episodes(spec, [5])[0]
    pol = BehaviourPolicy(spec)
    mu = np.stack([pol.mean(o) for o in ep["observations"]])
    np.testing.assert_allclose(ep["mu"], mu)
    assert np.all(np.abs(mu) <= 1)
    lp = gaussian_log_prob_np(ep["actions"], ep["mu"], 0.3)
    np.testing.assert_allclose(lp, [pol.log_prob(o, a) for o, a in zip(ep["observations"], ep["actions"])])
    # the noise that generated the actions is standard normal given the labels
    z = (ep["actions"] - ep["mu"]) / 0.3
    assert abs(z.mean()) < 0.3 and 0.7 < z.std() < 1.3
    assert (ep["policy_id"] == 3).all()


@pytest.mark.parametrize("task", ["door-open", "button-press"])
def test_logged_observations_are_the_envs_and_labels_replay_exactly(task):
    # SawyerDoorOpenV3Policy.get_action writes into its argument (obs[4] -= 0.05); the behaviour
    # policy must hand it a copy, so the dataset holds what the env returned and mu(s) is exact
    spec = BehaviourSpec(task, 0.4, 0.3, 1)
    ep = rollout(spec, 11, record=True, horizon=40)
    env = make_env(task)
    obs, _ = reset_episode(env, 11)
    pol = BehaviourPolicy(spec)
    for t in range(40):
        np.testing.assert_array_equal(ep["observations"][t], obs)
        before = obs.copy()
        np.testing.assert_array_equal(pol.mean(obs), ep["mu"][t])
        np.testing.assert_array_equal(obs, before)  # mean() leaves its input alone
        obs = env.step(np.clip(ep["actions"][t], -1, 1).astype(np.float32))[0]


def test_collection_does_not_depend_on_worker_count():
    spec = BehaviourSpec("door-open", 0.5, 0.3, 0)
    jobs = [(spec, s) for s in (1, 2, 3)]
    a = run_episodes(jobs, workers=1)
    b = run_episodes(jobs, workers=2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["actions"], y["actions"])
        np.testing.assert_array_equal(x["observations"], y["observations"])


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    specs = [BehaviourSpec("door-open", 0.6, 0.3, 1, 0), BehaviourSpec("door-open", 0.5, 0.3, 0, 1)]
    eps = _episodes(specs[0], [10, 11], horizon=80) + _episodes(specs[1], [12], horizon=80)
    data = episodes_to_arrays(eps, [10, 11, 12])
    meta = {"task": "door-open", "kind": "heterogeneous", "seed": 0,
            "policies": [{"policy_id": 0, "w": 0.6}, {"policy_id": 1, "w": 0.5}]}
    path = tmp_path_factory.mktemp("mw") / "d.hdf5"
    write_dataset(path, data, meta)
    return path, data, meta


def test_dataset_schema_round_trip(small_dataset):
    path, data, meta = small_dataset
    d = load_dataset(path)
    for k, (dtype, shape) in STEP_KEYS.items():
        assert d[k].dtype == np.dtype(dtype) and d[k].shape == (240, *shape), k
        np.testing.assert_array_equal(d[k], data[k])
    for k, v in data["episodes"].items():
        np.testing.assert_array_equal(d["episodes"][k], v)
    assert d["metadata"]["task"] == "door-open" and d["metadata"]["policies"] == meta["policies"]
    assert d["metadata"]["schema_version"] == 1
    # D4RL conventions: next_observations shift within an episode, a timeout closes each episode
    np.testing.assert_array_equal(d["next_observations"][:79], d["observations"][1:80])
    assert d["timeouts"][[79, 159, 239]].all() and d["timeouts"].sum() == 3
    np.testing.assert_array_equal(d["policy_id"], np.repeat([0, 0, 1], 80))


def test_truncated_or_corrupted_file_gives_clear_error(small_dataset, tmp_path):
    path, _, _ = small_dataset
    raw = path.read_bytes()
    trunc = tmp_path / "trunc.hdf5"
    trunc.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match="trunc.hdf5.*(truncated|corrupted)"):
        load_dataset(trunc)
    garbage = tmp_path / "garbage.hdf5"
    garbage.write_bytes(b"not an hdf5 file" * 100)
    with pytest.raises(DatasetError, match="garbage.hdf5"):
        load_dataset(garbage)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "missing.hdf5")
    partial = tmp_path / "partial.hdf5"
    partial.write_bytes(raw)
    with h5py.File(partial, "a") as f:
        del f["behavior_mean"]
    with pytest.raises(DatasetError, match="missing arrays.*behavior_mean"):
        load_dataset(partial)
    short = tmp_path / "short.hdf5"
    short.write_bytes(raw)
    with h5py.File(short, "a") as f:
        a = f["rewards"][()]
        del f["rewards"]
        f["rewards"] = a[:-5]
    with pytest.raises(DatasetError, match="'rewards' has shape"):
        load_dataset(short)


def test_dataset_policies_carry_the_calibration_verdict():
    from benchmarks.metaworld.collect import dataset_policies

    cal = [{"task": "door-open", "target": 0.2, "w": 0.61, "distractor_seed": 1, "measured_success": 0.4,
            "measured_episodes": 50, "reached": True, "within_tolerance": False, "warnings": ["fresh 0.40"]},
           {"task": "door-open", "target": 0.5, "w": 0.56, "distractor_seed": 0, "measured_success": 0.5,
            "measured_episodes": 50}]  # an older calibration file without the verdict fields
    het = dataset_policies("heterogeneous", cal, 0.3)
    assert [(s.w, s.distractor_seed, s.policy_id) for s, _, _ in het] == [(0.61, 1, 0), (0.56, 0, 1)]
    lo, hi = het[0][2], het[1][2]
    assert lo["calibration_within_tolerance"] is False and lo["calibration_warnings"] == ["fresh 0.40"]
    assert hi["calibration_reached"] is True and hi["calibration_warnings"] == []
    (homo,) = dataset_policies("homogeneous", cal, 0.3)
    assert homo[0].w == 0.56 and homo[1] == 1.0


@pytest.mark.parametrize("counts", [[20, 20], [40], [1, 3], [7, 5, 2]])
def test_interleave_keeps_counts_and_spreads_policies(counts):
    from benchmarks.metaworld.collect import interleave

    order = interleave(counts)
    assert [order.count(k) for k in range(len(counts))] == counts
    for k, n in enumerate(counts):  # every prefix holds each policy's share, within one episode
        for i in range(1, len(order) + 1):
            assert abs(order[:i].count(k) - i * n / len(order)) <= 1.0


def test_collected_policies_are_interleaved_over_distinct_layouts():
    from benchmarks.metaworld.collect import collect
    from benchmarks.metaworld.envs import episode_layout

    cal = [{"task": "button-press", "target": 0.2, "w": 0.45, "distractor_seed": 1, "measured_success": 0.2,
            "measured_episodes": 50},
           {"task": "button-press", "target": 0.5, "w": 0.3, "distractor_seed": 0, "measured_success": 0.5,
            "measured_episodes": 50}]
    data, meta = collect("button-press", "heterogeneous", cal, episodes=4, seed=2, workers=1, log=lambda *_: None)
    ep = data["episodes"]
    assert ep["policy_id"].tolist() == [0, 1, 0, 1]
    assert [episode_layout(s) for s in ep["seed"]] == [0, 1, 2, 3]  # layout-stratified seeds
    assert [p["episodes"] for p in meta["policies"]] == [2, 2]
