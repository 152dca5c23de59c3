"""End-to-end: a tiny dataset -> preferences -> training of every method, with resumable checkpoints."""
import json

import numpy as np
import pytest
import torch

from benchmarks.metaworld.tiny import write_tiny_dataset
from methods.ppl.train import TrainConfig, train


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ppl")
    write_tiny_dataset(d)
    return d


def _cfg(d, method, out, **kw):
    base = dict(method=method, dataset=str(d / "data.hdf5"), prefs=str(d / "prefs.hdf5"), out=str(out),
                steps=6, bc_steps=3, batch=4, bc_batch=32, hidden=[16, 16], dropout=0.25, rm_steps=4,
                eval_every=3, eval_episodes=1, checkpoint_every=2, log_every=2, lr=1e-3)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("method", ["sft", "cpl", "piql", "ppl"])
def test_killed_run_resumes_to_the_same_result(tiny_files, tmp_path, method):
    full = train(_cfg(tiny_files, method, tmp_path / "full"), log=lambda *_: None)
    assert train(_cfg(tiny_files, method, tmp_path / "cut"), stop_after=4, log=lambda *_: None) is None
    assert not (tmp_path / "cut" / "metrics.json").exists()
    resumed = train(_cfg(tiny_files, method, tmp_path / "cut"), log=lambda *_: None)
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)["policy"]
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)["policy"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert full["evals"] == resumed["evals"] and [e["step"] for e in full["evals"]] == [3, 6]
    rows = json.loads((tmp_path / "cut" / "metrics.json").read_text())["rows"]
    diag = ({"logit_abs_mean", "logit_sat_frac", "logit_mean", "action_mse_preferred", "action_mse_rejected",
             "behavior_gap"} | ({"score_logp", "score_kl"} if method == "ppl" else set()))
    expected = {("success", 3), ("success", 6), ("success", -1), ("success_best", -1)}
    if method in ("cpl", "ppl"):  # preference diagnostics at the start of the contrastive phase and at the end
        expected |= {(m, s) for m in diag for s in (3, -1)}
    assert {(r["metric"], r["step"]) for r in rows} == expected
    full_rows = json.loads((tmp_path / "full" / "metrics.json").read_text())["rows"]
    assert sorted((r["metric"], r["step"], r["value"]) for r in rows) == \
           sorted((r["metric"], r["step"], r["value"]) for r in full_rows)
    assert all(r["paper"] == "ppl" and r["method"] == method and r["dataset"] == "button-press/heterogeneous"
               for r in rows)
    best = max(r["value"] for r in rows if r["metric"] == "success" and r["step"] >= 0)
    assert [r["value"] for r in rows if r["metric"] == "success_best"] == [best]


def test_bad_method_and_changed_config_are_refused(tiny_files, tmp_path):
    with pytest.raises(ValueError, match="method.*bc, sft, cpl, piql, ppl"):
        train(_cfg(tiny_files, "dpo", tmp_path / "x"), log=lambda *_: None)
    train(_cfg(tiny_files, "cpl", tmp_path / "y", steps=4), stop_after=2, log=lambda *_: None)
    with pytest.raises(ValueError, match="different config"):
        train(_cfg(tiny_files, "cpl", tmp_path / "y", steps=4, lr=0.5), log=lambda *_: None)


def test_numpy_actor_matches_the_torch_mean_action():
    import numpy as np
    import torch

    from methods.ppl.policy import GaussianPolicy

    torch.manual_seed(0)
    pol = GaussianPolicy(39, 4, [32, 32], dropout=0.25)
    pol.set_obs_stats(torch.randn(200, 39) * 3 + 1)
    act = pol.numpy_actor()
    pol.eval()  # dropout off for the torch reference
    obs = np.random.default_rng(0).normal(size=(50, 39)) * 3
    for o in obs:
        a = act(o)
        assert a.dtype == np.float32 and a.shape == (4,)
        np.testing.assert_allclose(a, pol.act(o), atol=1e-5)
    # a snapshot: later weight updates do not leak into an actor made before them
    with torch.no_grad():
        pol.net[0].bias.add_(1.0)
    assert np.abs(act(obs[0]) - pol.act(obs[0])).max() > 1e-4


def test_bc_run_is_the_shared_start_of_sft_cpl_ppl(tiny_files, tmp_path):
    """A `bc` run's policy is the policy at step bc_steps of a full run; SFT/CPL/PPL started from it (--init)
    train only the later phase, and a BC policy of another dataset or budget is refused."""
    full = _cfg(tiny_files, "cpl", tmp_path / "full", steps=3, bc_steps=3, eval_every=3)
    train(full, log=lambda *_: None)
    train(_cfg(tiny_files, "bc", tmp_path / "bc"), log=lambda *_: None)
    bc = torch.load(tmp_path / "bc" / "policy.pt", weights_only=False)
    ref = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)["policy"]
    for k in ref:
        torch.testing.assert_close(bc["policy"][k], ref[k], rtol=0, atol=0)
    rows = json.loads((tmp_path / "bc" / "metrics.json").read_text())["rows"]
    assert {(r["metric"], r["step"]) for r in rows} == {("success", 3), ("success", -1), ("success_best", -1)}
    for method in ("sft", "cpl", "ppl"):
        out = train(_cfg(tiny_files, method, tmp_path / method, init=str(tmp_path / "bc" / "policy.pt")),
                    log=lambda *_: None)
        assert [e["step"] for e in out["evals"]] == [6]  # no BC phase, no BC evaluation of its own
        log = [json.loads(l) for l in (tmp_path / method / "train_log.jsonl").read_text().splitlines()]
        assert not any("bc_loss" in r for r in log) or method == "sft"
    with pytest.raises(ValueError, match="another dataset or bc_steps"):
        train(_cfg(tiny_files, "cpl", tmp_path / "z", bc_steps=2, init=str(tmp_path / "bc" / "policy.pt")),
              log=lambda *_: None)


def test_piql_actor_can_start_from_the_bc_policy(tiny_files, tmp_path):
    """P-IQL with --init: the actor starts as the BC policy, the IQL phase still runs its own `steps` (from 0),
    and the log carries the advantage-weight diagnostics (clipped share, effective sample size)."""
    train(_cfg(tiny_files, "bc", tmp_path / "bc"), log=lambda *_: None)
    cfg = _cfg(tiny_files, "piql", tmp_path / "piql", steps=4, eval_every=4, init=str(tmp_path / "bc" / "policy.pt"))
    out = train(cfg, log=lambda *_: None)
    assert [e["step"] for e in out["evals"]] == [4]
    log = [json.loads(l) for l in (tmp_path / "piql" / "train_log.jsonl").read_text().splitlines()]
    iql = [r for r in log if "w_ess_frac" in r]
    assert iql and all(0 < r["w_ess_frac"] <= 1 + 1e-9 and 0 <= r["w_clip_frac"] <= 1 for r in iql)


def test_device_option(tiny_files, tmp_path):
    """--device: cpu is the default path; auto falls back to CPU without CUDA; cuda without a GPU is a clear
    error; with a GPU a short CPL and P-IQL run trains there (the paper tier's PPL jobs)."""
    from methods.ppl.train import resolve_device

    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu")
    a = train(_cfg(tiny_files, "cpl", tmp_path / "a"), log=lambda *_: None)
    b = train(_cfg(tiny_files, "cpl", tmp_path / "b", device="auto" if not torch.cuda.is_available() else "cpu"),
              log=lambda *_: None)
    assert a["evals"] == b["evals"]
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            train(_cfg(tiny_files, "cpl", tmp_path / "c", device="cuda"), log=lambda *_: None)
        pytest.skip("no CUDA device: the GPU half of this test needs one")
    for method in ("cpl", "piql"):
        out = train(_cfg(tiny_files, method, tmp_path / f"gpu_{method}", device="cuda"), log=lambda *_: None)
        assert out["evals"] and 0.0 <= out["final"] <= 1.0


def test_piql_reward_scale_option(tiny_files, tmp_path):
    """reward_norm: the raw learned reward (official) or standardised (ours) feeds IQL; the raw scale is logged,
    the two give different advantage weights, and an unknown value is refused before any training."""
    ess = {}
    for norm in ("standardise", "none"):
        train(_cfg(tiny_files, "piql", tmp_path / norm, steps=4, eval_every=4, reward_norm=norm), log=lambda *_: None)
        log = [json.loads(l) for l in (tmp_path / norm / "train_log.jsonl").read_text().splitlines()]
        assert [r["reward_std_raw"] > 0 for r in log if "reward_std_raw" in r] == [True]
        ess[norm] = [r["w_ess_frac"] for r in log if "w_ess_frac" in r]
    assert ess["standardise"] != ess["none"]
    with pytest.raises(ValueError, match="reward_norm.*standardise, none"):
        train(_cfg(tiny_files, "piql", tmp_path / "bad", reward_norm="minmax"), log=lambda *_: None)
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def test_runs_sharing_a_process_get_the_results_they_get_alone(tiny_files, tmp_path):
    """The workflow runs a dataset and seed's methods in one process (repro.multirun): a run must not inherit RNG,
    env or torch state from the run before it."""
    import os
    import subprocess
    import sys
    from dataclasses import asdict

    from repro.cli import to_argv

    def flags(method, out, seed):
        cfg = asdict(_cfg(tiny_files, method, out, seed=seed, eval_episodes=2, eval_every=6, dropout=0.0))
        return to_argv({k: v for k, v in cfg.items() if v is not None})

    def run(*flag_sets):
        argv = [a for i, f in enumerate(flag_sets) for a in (["--"] if i else []) + f]
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        subprocess.run([sys.executable, "-m", "repro.multirun", "methods.ppl.train", *argv], check=True, env=env,
                       capture_output=True)

    run(flags("cpl", tmp_path / "alone", 1))
    run(flags("piql", tmp_path / "first", 0), flags("cpl", tmp_path / "second", 1))
    a = json.loads((tmp_path / "alone" / "metrics.json").read_text())
    b = json.loads((tmp_path / "second" / "metrics.json").read_text())
    key = lambda rows: sorted((r["metric"], r["step"], r["value"]) for r in rows)  # noqa: E731
    assert key(a["rows"]) == key(b["rows"])
    pa = torch.load(tmp_path / "alone" / "checkpoint.pt", weights_only=False)["policy"]
    pb = torch.load(tmp_path / "second" / "checkpoint.pt", weights_only=False)["policy"]
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], rtol=0, atol=0)
    assert (tmp_path / "first" / "metrics.json").exists()


def test_action_diagnostics_measure_distances_to_the_data_and_the_behaviour_mean():
    """The preferred rows are the first n_pos; the gap is 0 for a behaviour mean equal to the policy's own, and
    every value equals the mean per-step squared distance computed directly."""
    from methods.ppl.policy import GaussianPolicy
    from methods.ppl.train import action_diagnostics

    g = torch.Generator().manual_seed(3)
    pol = GaussianPolicy(obs_dim=5, act_dim=2, hidden=(8,), logp="mse")
    obs, act = torch.randn(6, 4, 5, generator=g), torch.randn(6, 4, 2, generator=g)
    with torch.no_grad():
        mu = pol.mean(obs)
    out = action_diagnostics(pol, obs, act, mu, n_pos=2)
    assert out["behavior_gap"] == 0.0
    assert out["action_mse_preferred"] == pytest.approx(float((mu[:2] - act[:2]).square().sum(-1).mean()))
    assert out["action_mse_rejected"] == pytest.approx(float((mu[2:] - act[2:]).square().sum(-1).mean()))
    shifted = action_diagnostics(pol, obs, act, mu + torch.tensor([0.3, -0.4]), n_pos=2)
    assert shifted["behavior_gap"] == pytest.approx(0.25)
    assert pol.training  # the policy's mode is restored


def test_bc_coeff_adds_the_mean_negative_log_prob_of_the_pair_segments(tiny_files):
    """loss(bc_coeff = 2) - loss(0) = 2 * mean(-log pi) over both segments of the same batch (the official CPL's
    bc_data "all"); the default 0 leaves the loss and the log unchanged."""
    from methods.ppl.train import Data, Trainer

    data = Data(str(tiny_files / "data.hdf5"), str(tiny_files / "prefs.hdf5"))
    seen = {}
    for coeff in (0.0, 2.0):
        tr = Trainer(_cfg(tiny_files, "cpl", "unused", bc_coeff=coeff), data)
        tr._update = lambda loss, c=coeff: seen.__setitem__(c, float(loss))  # record instead of stepping
        out = tr.contrastive_step()
        assert ("bc_loss" in out) == (coeff > 0)
    tr = Trainer(_cfg(tiny_files, "cpl", "unused"), data)
    pos, neg = data.sample_pairs(tr.cfg.batch, tr.g)
    both = torch.cat([pos, neg])
    with torch.no_grad():
        bc = float(-tr.policy.log_prob(data.obs[both], data.act[both]).mean())
    assert seen[2.0] - seen[0.0] == pytest.approx(2 * bc, rel=1e-5)
