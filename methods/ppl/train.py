"""Offline training of SFT / CPL / P-IQL / PPL on a labelled MetaWorld dataset, with evaluation.

One run = one method x one dataset x one seed. Every ``eval_every`` steps the policy is evaluated on
``eval_episodes`` fixed episodes (deterministic mean action; success = success at any step); a
checkpoint (models, optimisers, RNG states, eval history) is written every ``checkpoint_every``
steps and a killed run started again with the same ``--out`` resumes from it.

``--method bc`` runs the behaviour-cloning phase alone (``bc_steps`` on all transitions) and saves its policy;
SFT / CPL / PPL given ``--init <bc run>/policy.pt`` start from it at step ``bc_steps`` with a fresh optimiser
(as the official CPL code resets its optimiser and starts its lr warm-up after BC), so all three share one BC
start per dataset and seed, evaluated once. P-IQL given ``--init`` starts its actor there too (its reward model,
critics and IQL step count start fresh); the official P-IQL trains its actor from scratch for 500k steps.
Preference methods also log the preference-logit distribution (``logit_abs_mean``, ``logit_sat_frac`` = share of
|logit| > 5) and, for PPL, both terms of the segment score (``score_logp`` = alpha sum log pi, ``score_kl`` =
lam sum KL) on a fixed set of pairs at their start and end.

Outputs in ``--out``: metrics.json (rows: ``success`` per eval step, ``success`` at step -1 = final,
``success_best`` at step -1, the diagnostics), train_log.jsonl (losses, updates/s), eval_episodes.jsonl.

    python -m methods.ppl.train --method ppl --dataset d.hdf5 --prefs p.hdf5 --out work/tiny/ppl/run
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from methods.ppl.losses import (awr_weights, bc_loss, bradley_terry_loss, cpl_logits, cpl_loss, expectile_loss,
                                ppl_logits, ppl_loss)
from methods.ppl.policy import GaussianPolicy, mlp

METHODS = ("bc", "sft", "cpl", "piql", "ppl")
REWARD_NORMS = ("standardise", "none")  # P-IQL's learned reward before IQL
SATURATED = 5.0  # |logit| above which the logistic loss is saturated (gradient < 0.7% of its maximum)
EVAL_SEED_BASE = 3 * 10**6


@dataclass
class TrainConfig:
    """Hyper-parameters of one offline preference-learning run (defaults: CPL's, spec ppl.md)."""

    method: str = "ppl"  # sft | cpl | piql | ppl
    dataset: str = ""  # dataset HDF5 (benchmarks.metaworld.collect)
    prefs: str = ""  # preference HDF5 (benchmarks.metaworld.preferences)
    out: str = "run"  # output folder (metrics.json, checkpoint.pt, logs)
    seed: int = 0  # training seed
    steps: int = 500_000  # total gradient steps (P-IQL: IQL steps, after the reward model)
    bc_steps: int = 200_000  # BC pre-training steps on all data (SFT/CPL/PPL)
    batch: int = 96  # segment pairs per contrastive/SFT step
    bc_batch: int = 512  # transitions per BC / IQL step
    lr: float = 1e-4  # Adam learning rate
    hidden: list[int] = field(default_factory=lambda: [512, 512])  # MLP hidden sizes
    dropout: float = 0.25  # policy dropout
    init_std: float = 0.3  # policy action std (initial value if learn_std)
    learn_std: bool = False  # learn a state-independent std
    logp: str = "mse"  # log-prob convention: mse (CPL's official -||mu - a||^2) | gaussian (density at init_std)
    alpha: float = 0.1  # temperature alpha of CPL/PPL
    bias: float = 0.5  # conservative bias on the rejected segment's score (CPL's lambda; PPL: its whole score)
    lam: float | None = None  # PPL weight of the contrastive KL term (None: alpha, from the regret derivation)
    # weight of a BC term, the mean -log pi over both segments of each pair, added to the CPL / PPL loss (the
    # official CPL's bc_coeff with bc_data "all"; its mw_state_dense/cpl_bc.yaml uses 1.0 with bias 1.0). It
    # anchors the policy to the data; 0 = the paper's headline CPL / PPL
    bc_coeff: float = 0.0
    warmup_steps: int = 0  # linear lr warm-up after the BC phase (CPL's official schedule), 0 = none
    schedule: str = "constant"  # lr schedule after warm-up: constant | cosine (P-IQL's official one)
    init: str | None = None  # policy.pt of a `bc` run: start SFT/CPL/PPL from it at step bc_steps (P-IQL: its actor)
    rm_steps: int = 10_000  # P-IQL reward-model steps
    # P-IQL's learned reward for IQL: standardise (mean 0, std 1 over the dataset) | none (raw, as the official code)
    reward_norm: str = "standardise"
    expectile: float = 0.7  # IQL expectile
    beta: float = 0.3333  # IQL advantage temperature (weights exp(adv / beta))
    max_weight: float = 100.0  # IQL weight clip
    gamma: float = 0.99  # IQL discount
    tau: float = 0.005  # IQL target-network Polyak rate
    eval_every: int = 50_000  # steps between evaluations
    eval_episodes: int = 25  # episodes per evaluation
    checkpoint_every: int = 10_000  # steps between checkpoints
    log_every: int = 1_000  # steps between train_log lines
    threads: int = 1  # torch threads
    device: str = "cpu"  # cpu | cuda | auto: networks and data tensors (MetaWorld evaluation stays on CPU)
    model_name: str = "gaussian-mlp"  # model column of the results
    run_name: str | None = None  # method column of the results (None: method), e.g. a sweep point cpl_a0.3


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
class Data:
    """Tensors for training: all transitions, and the labelled segments with their pairs."""

    def __init__(self, dataset_path: str, prefs_path: str):
        from benchmarks.metaworld.collect import load_dataset
        from benchmarks.metaworld.preferences import load_prefs, segment_index

        d = load_dataset(dataset_path)
        p = load_prefs(prefs_path)
        self.task, self.kind = d["metadata"]["task"], d["metadata"]["kind"]
        f = lambda k: torch.as_tensor(d[k], dtype=torch.float32)  # noqa: E731
        self.obs, self.act, self.next_obs = f("observations"), f("actions"), f("next_observations")
        self.rew_true = f("rewards")
        self.done = torch.as_tensor(d["terminals"], dtype=torch.float32)
        self.mu_b, self.std_b = f("behavior_mean"), f("behavior_std")
        self.device = torch.device("cpu")
        L = int(p["metadata"].get("segment_length", 64))
        self.seg_idx = torch.as_tensor(segment_index(d["episodes"], p["seg_episode"], p["seg_start"], L))
        self.pairs = torch.as_tensor(p["pairs"])
        self.label = torch.as_tensor(p["label"], dtype=torch.float32)
        # segments preferred in at least one comparison (SFT's second phase)
        pos = torch.where(self.label > 0.5, self.pairs[:, 1], self.pairs[:, 0])[self.label != 0.5]
        self.preferred = torch.unique(pos)
        self.meta = {"task": self.task, "kind": self.kind, "steps": int(len(self.obs)),
                     "segments": int(len(self.seg_idx)), "pairs": int(len(self.pairs))}

    def sample_pairs(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat step indices (n, L) of the preferred and rejected segments of n random pairs.

        A tie (label 0.5) is oriented at random, so its expected loss is the 0.5-label loss.
        """
        k = torch.randint(0, len(self.pairs), (n,), generator=g)
        y = self.label[k]
        flip = torch.where(y == 0.5, torch.rand(n, generator=g) < 0.5, y > 0.5)
        a, b = self.pairs[k, 0], self.pairs[k, 1]
        pos, neg = torch.where(flip, b, a), torch.where(flip, a, b)
        return self.seg_idx[pos], self.seg_idx[neg]

    def sample_steps(self, n: int, g: torch.Generator) -> torch.Tensor:
        return torch.randint(0, len(self.obs), (n,), generator=g)

    def to(self, device: torch.device) -> "Data":
        """The float tensors the losses read on ``device``; indices, pairs and labels stay on CPU, where the
        CPU generator draws the batches (so a seed draws the same batches on every device)."""
        for k in ("obs", "act", "next_obs", "rew_true", "done", "mu_b", "std_b"):
            setattr(self, k, getattr(self, k).to(device))
        self.device = torch.device(device)
        return self


@torch.no_grad()
def action_diagnostics(policy: GaussianPolicy, obs: torch.Tensor, act: torch.Tensor, mu_b: torch.Tensor,
                       n_pos: int) -> dict[str, float]:
    """Where the policy's mean action sits relative to the data, on segments (2n, L, .) whose first ``n_pos``
    rows are the preferred ones (the diagnostic pairs): ``action_mse_preferred`` / ``action_mse_rejected``, the
    mean per-step ||mu(s) - a||^2 on the preferred / rejected segments, and ``behavior_gap``, the mean
    ||mu(s) - mu_b(s)||^2 to the behaviour policy's mean over both (the KL of the mse convention). A contrastive
    loss can fall by moving away from the rejected actions as well as towards the preferred ones; these say
    which it did, and how far the policy left the data (a BC start, which fits the behaviour mean, sits at
    0.02-0.12 on the tiny datasets)."""
    was = policy.training
    policy.eval()
    try:
        mu = policy.mean(obs)
    finally:
        policy.train(was)
    sq = (mu - act).square().sum(-1)
    return {"action_mse_preferred": float(sq[:n_pos].mean()), "action_mse_rejected": float(sq[n_pos:].mean()),
            "behavior_gap": float((mu - mu_b).square().sum(-1).mean())}


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------
def evaluate_policy(policy: GaussianPolicy, task: str, episodes: int = 25, horizon: int = 250,
                    seed_base: int = EVAL_SEED_BASE) -> list[dict[str, Any]]:
    """Roll out the deterministic mean action; success = success at any step (stops there)."""
    from benchmarks.metaworld.envs import make_env, reset_episode

    env = _eval_env(task)
    act = policy.numpy_actor()  # = policy.act up to float rounding, ~7x cheaper per step
    out = []
    for i in range(episodes):
        obs, _ = reset_episode(env, seed_base + i)
        success, t = False, 0
        for t in range(1, horizon + 1):
            obs, _, term, trunc, info = env.step(act(obs))
            if info.get("success", 0.0) > 0:
                success = True
                break
            if term or trunc:
                break
        out.append({"episode_seed": seed_base + i, "success": success, "length": t})
    return out


_EVAL_ENVS: dict[str, Any] = {}


def _eval_env(task: str):
    from benchmarks.metaworld.envs import make_env

    if task not in _EVAL_ENVS:
        _EVAL_ENVS[task] = make_env(task, seed=0)
    return _EVAL_ENVS[task]


# ----------------------------------------------------------------------------------------------
# The trainer (one class; the math is in methods.ppl.losses)
# ----------------------------------------------------------------------------------------------
class Trainer:
    def __init__(self, cfg: TrainConfig, data: Data):
        if cfg.method not in METHODS:
            raise ValueError(f"TrainConfig.method: unknown method {cfg.method!r}; valid: {', '.join(METHODS)}")
        if cfg.reward_norm not in REWARD_NORMS:
            raise ValueError(f"TrainConfig.reward_norm: {cfg.reward_norm!r} is not one of {', '.join(REWARD_NORMS)}")
        self.cfg, self.data = cfg, data
        self.device = resolve_device(cfg.device)
        data.to(self.device)
        torch.manual_seed(cfg.seed)
        self.g = torch.Generator().manual_seed(cfg.seed)
        self.policy = GaussianPolicy(39, 4, cfg.hidden, cfg.dropout, cfg.init_std, cfg.learn_std, logp=cfg.logp)
        self.policy.to(self.device)  # before the optimiser is built on its parameters
        self.policy.set_obs_stats(data.obs)
        self.opt = torch.optim.Adam([p for p in self.policy.parameters() if p.requires_grad], lr=cfg.lr)
        self.step = 0
        self.diag_start: dict[str, float] | None = None  # preference diagnostics when the contrastive phase starts
        if cfg.init:
            if cfg.method not in ("sft", "cpl", "ppl", "piql"):
                raise ValueError(f"TrainConfig.init: only sft/cpl/ppl/piql start from a BC policy, not {cfg.method!r}")
            st = torch.load(cfg.init, map_location="cpu", weights_only=False)
            if st.get("bc_steps") != cfg.bc_steps or st.get("dataset") != os.path.abspath(cfg.dataset):
                raise ValueError(f"{cfg.init}: BC policy of another dataset or bc_steps "
                                 f"({st.get('dataset')}, {st.get('bc_steps')}) than this run "
                                 f"({os.path.abspath(cfg.dataset)}, {cfg.bc_steps})")
            self.policy.load_state_dict(st["policy"])
            # SFT/CPL/PPL continue the BC run's step count; P-IQL's actor starts its IQL phase (steps 0..steps)
            self.step = 0 if cfg.method == "piql" else cfg.bc_steps
        self.evals: list[dict[str, Any]] = []
        self.nets: dict[str, torch.nn.Module] = {}
        if cfg.method == "piql":
            h = cfg.hidden
            self.nets = {k: net.to(self.device) for k, net in
                         {"reward": mlp(43, h, 1), "q1": mlp(43, h, 1), "q2": mlp(43, h, 1), "v": mlp(39, h, 1),
                          "q1_t": mlp(43, h, 1), "q2_t": mlp(43, h, 1)}.items()}
            self.nets["q1_t"].load_state_dict(self.nets["q1"].state_dict())
            self.nets["q2_t"].load_state_dict(self.nets["q2"].state_dict())
            self.rm_opt = torch.optim.Adam(self.nets["reward"].parameters(), lr=cfg.lr)
            self.q_opt = torch.optim.Adam(list(self.nets["q1"].parameters()) + list(self.nets["q2"].parameters()),
                                          lr=cfg.lr)
            self.v_opt = torch.optim.Adam(self.nets["v"].parameters(), lr=cfg.lr)
            self.rm_step = 0
            self.rew_hat: torch.Tensor | None = None

    # ---- losses per method -----------------------------------------------------------------
    def bc_step(self, idx: torch.Tensor) -> dict[str, float]:
        d = self.data
        loss = bc_loss(self.policy.log_prob(d.obs[idx], d.act[idx]))
        self._update(loss)
        return {"bc_loss": float(loss)}

    def contrastive_step(self) -> dict[str, float]:
        d, c = self.data, self.cfg
        pos, neg = d.sample_pairs(c.batch, self.g)
        both = torch.cat([pos, neg])  # (2B, L)
        if c.method == "cpl":
            lp = self.policy.log_prob(d.obs[both], d.act[both])
            loss = cpl_loss(lp[: c.batch], lp[c.batch:], c.alpha, c.bias)
        else:
            lp, kl = self.policy.log_prob_and_kl(d.obs[both], d.act[both], d.mu_b[both], d.std_b[both])
            loss = ppl_loss(lp[: c.batch], lp[c.batch:], kl[: c.batch], kl[c.batch:], c.alpha, c.lam, c.bias)
        out = {f"{c.method}_loss": float(loss)}
        if c.bc_coeff:
            bc = bc_loss(lp)
            loss = loss + c.bc_coeff * bc
            out["bc_loss"] = float(bc)
        self._update(loss)
        return out

    @torch.no_grad()
    def diagnostics(self, n_pairs: int = 512) -> dict[str, float]:
        """Preference-logit distribution (and PPL's two score terms) on a fixed set of pairs, in eval mode."""
        d, c = self.data, self.cfg
        pos, neg = d.sample_pairs(n_pairs, torch.Generator().manual_seed(12345))
        both = torch.cat([pos, neg])
        was = self.policy.training
        self.policy.eval()
        try:
            lp, kl = self.policy.log_prob_and_kl(d.obs[both], d.act[both], d.mu_b[both], d.std_b[both])
        finally:
            self.policy.train(was)
        n = len(pos)
        if c.method == "ppl":
            logits = ppl_logits(lp[:n], lp[n:], kl[:n], kl[n:], c.alpha, c.lam, c.bias)
        else:
            logits = cpl_logits(lp[:n], lp[n:], c.alpha, c.bias)
        out = {"logit_abs_mean": float(logits.abs().mean()), "logit_sat_frac": float((logits.abs() > SATURATED).float().mean()),
               "logit_mean": float(logits.mean())}
        out.update(action_diagnostics(self.policy, d.obs[both], d.act[both], d.mu_b[both], n))
        if c.method == "ppl":
            lam = c.alpha if c.lam is None else c.lam
            out["score_logp"] = float(c.alpha * lp.sum(-1).mean())
            out["score_kl"] = float(lam * kl.sum(-1).mean())
        return out

    def sft_pref_step(self) -> dict[str, float]:
        d, c = self.data, self.cfg
        k = torch.randint(0, len(d.preferred), (c.batch,), generator=self.g)
        idx = d.seg_idx[d.preferred[k]].reshape(-1)
        return self.bc_step(idx)

    def rm_step_(self) -> dict[str, float]:
        d, c = self.data, self.cfg
        pos, neg = d.sample_pairs(c.batch, self.g)
        r = self.nets["reward"]
        rp = r(torch.cat([d.obs[pos], d.act[pos]], -1)).squeeze(-1)
        rn = r(torch.cat([d.obs[neg], d.act[neg]], -1)).squeeze(-1)
        loss = bradley_terry_loss(rp, rn)
        self.rm_opt.zero_grad()
        loss.backward()
        self.rm_opt.step()
        self.rm_step += 1
        return {"rm_loss": float(loss)}

    def label_rewards(self) -> None:
        d = self.data
        with torch.no_grad():
            r = self.nets["reward"](torch.cat([d.obs, d.act], -1)).squeeze(-1)
        self.rew_std_raw = float(r.std())  # logged: the raw scale sets how peaked exp(adv / beta) gets
        if self.cfg.reward_norm == "none":
            self.rew_hat = r
        else:  # standardise
            self.rew_hat = (r - r.mean()) / r.std().clamp_min(1e-6)

    def iql_step(self) -> dict[str, float]:
        d, c, n = self.data, self.cfg, self.nets
        idx = d.sample_steps(c.bc_batch, self.g)
        s, a, s2 = d.obs[idx], d.act[idx], d.next_obs[idx]
        sa = torch.cat([s, a], -1)
        with torch.no_grad():
            q_t = torch.min(n["q1_t"](sa), n["q2_t"](sa)).squeeze(-1)
            target = self.rew_hat[idx] + c.gamma * (1 - d.done[idx]) * n["v"](s2).squeeze(-1)
        v = n["v"](s).squeeze(-1)
        v_loss = expectile_loss(q_t - v, c.expectile)
        self.v_opt.zero_grad()
        v_loss.backward()
        self.v_opt.step()
        q_loss = (n["q1"](sa).squeeze(-1) - target).pow(2).mean() + (n["q2"](sa).squeeze(-1) - target).pow(2).mean()
        self.q_opt.zero_grad()
        q_loss.backward()
        self.q_opt.step()
        with torch.no_grad():
            for k in ("q1", "q2"):
                for p, pt in zip(n[k].parameters(), n[k + "_t"].parameters()):
                    pt.mul_(1 - c.tau).add_(c.tau * p)
            w = awr_weights(q_t - v.detach(), c.beta, c.max_weight)
        pi_loss = -(w * self.policy.log_prob(s, a)).mean()
        self._update(pi_loss)
        # how peaked the advantage weights are: the share clipped at max_weight and the effective sample size
        # (sum w)^2 / (N sum w^2) as a fraction of the batch (1 = plain BC, 1/N = regression onto one sample)
        ess = float(w.sum() ** 2 / (len(w) * w.pow(2).sum()).clamp_min(1e-12))
        return {"v_loss": float(v_loss), "q_loss": float(q_loss), "pi_loss": float(pi_loss),
                "w_clip_frac": float((w >= c.max_weight).float().mean()), "w_ess_frac": ess,
                "adv_mean": float((q_t - v.detach()).mean())}

    def lr_at(self, step: int) -> float:
        """lr of ``step`` within the run's own phase (BC: 0..bc_steps; P-IQL: 0..steps; SFT/CPL/PPL after BC:
        bc_steps..steps): a linear warm-up over ``warmup_steps`` (official CPL, after its BC phase), then
        constant or cosine to 0 at the phase's end (official P-IQL). The BC phase inside a full SFT/CPL/PPL run
        is always at the constant ``lr``."""
        c = self.cfg
        if c.method == "bc":
            start, end = 0, c.bc_steps
        elif c.method == "piql":
            start, end = 0, c.steps
        elif step < c.bc_steps:
            return c.lr
        else:
            start, end = c.bc_steps, c.steps
        k = step - start
        if k < c.warmup_steps:
            return c.lr * (k + 1) / c.warmup_steps
        if c.schedule == "cosine":
            return c.lr * 0.5 * (1 + np.cos(np.pi * min(1.0, k / max(1, end - start))))
        return c.lr

    def _update(self, loss: torch.Tensor) -> None:
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def train_step(self) -> dict[str, float]:
        c = self.cfg
        if c.method == "piql":
            return self.iql_step()
        if self.step < c.bc_steps or c.method == "bc":
            return self.bc_step(self.data.sample_steps(c.bc_batch, self.g))
        if c.method == "sft":
            return self.sft_pref_step()
        return self.contrastive_step()

    # ---- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        st = {"step": self.step, "evals": self.evals, "diag_start": self.diag_start, "policy": self.policy.state_dict(),
              "opt": self.opt.state_dict(), "g": self.g.get_state(), "torch_rng": torch.get_rng_state(),
              "config": asdict(self.cfg)}
        if self.device.type == "cuda":  # dropout draws from the device's generator
            st["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        if self.cfg.method == "piql":
            st.update(nets={k: v.state_dict() for k, v in self.nets.items()}, rm_opt=self.rm_opt.state_dict(),
                      q_opt=self.q_opt.state_dict(), v_opt=self.v_opt.state_dict(), rm_step=self.rm_step)
        return st

    def load(self, st: dict[str, Any]) -> None:
        self.step, self.evals, self.diag_start = st["step"], st["evals"], st.get("diag_start")
        self.policy.load_state_dict(st["policy"])
        self.opt.load_state_dict(st["opt"])
        self.g.set_state(st["g"])
        torch.set_rng_state(st["torch_rng"])
        if "cuda_rng" in st and self.device.type == "cuda":
            torch.cuda.set_rng_state(st["cuda_rng"], self.device)
        if self.cfg.method == "piql":
            for k, v in st["nets"].items():
                self.nets[k].load_state_dict(v)
            self.rm_opt.load_state_dict(st["rm_opt"])
            self.q_opt.load_state_dict(st["q_opt"])
            self.v_opt.load_state_dict(st["v_opt"])
            self.rm_step = st["rm_step"]


def resolve_device(name: str) -> torch.device:
    """``cpu`` | ``cuda`` | ``auto`` (cuda when available) -> a torch.device; a clear error without CUDA."""
    if name not in ("cpu", "cuda", "auto"):
        raise ValueError(f"TrainConfig.device must be cpu, cuda or auto, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("TrainConfig.device 'cuda': no CUDA device visible (use --device cpu or auto)")
    return torch.device(name)


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _append_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with open(path, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def train(cfg: TrainConfig, stop_after: int | None = None, log=print) -> dict[str, Any] | None:
    """Run (or resume) one training run; returns the summary, or None if stopped at ``stop_after`` steps."""
    from repro.progress import progress
    from repro.provenance import utc_now
    from repro.results import make_row, write_run

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Data(cfg.dataset, cfg.prefs)
    tr = Trainer(cfg, data)
    ck_path = out / "checkpoint.pt"
    started = utc_now()
    if ck_path.exists():
        st = torch.load(ck_path, map_location="cpu", weights_only=False)
        if st["config"] != asdict(cfg):
            raise ValueError(f"{ck_path}: checkpoint was written with a different config; delete it or use another --out")
        tr.load(st)
        started = st.get("started", started)
        log(f"[train] resumed {ck_path} at step {tr.step}")
    else:
        for name in ("train_log.jsonl", "eval_episodes.jsonl"):
            (out / name).unlink(missing_ok=True)
    dataset_name = f"{data.task}/{data.kind}"

    def checkpoint():
        _save_checkpoint(ck_path, {**tr.state(), "started": started})

    # P-IQL: reward model first (its own step counter), then label all transitions
    if cfg.method == "piql":
        while tr.rm_step < cfg.rm_steps:
            m = tr.rm_step_()
            if tr.rm_step % cfg.log_every == 0 or tr.rm_step == cfg.rm_steps:
                _append_jsonl(out / "train_log.jsonl", [{"rm_step": tr.rm_step, **m}])
        tr.label_rewards()
        _append_jsonl(out / "train_log.jsonl", [{"rm_step": tr.rm_step, "reward_std_raw": tr.rew_std_raw}])

    def do_eval():
        t0 = time.monotonic()
        eps = evaluate_policy(tr.policy, data.task, cfg.eval_episodes)
        rate = float(np.mean([e["success"] for e in eps]))
        tr.evals.append({"step": tr.step, "success": rate})
        _append_jsonl(out / "eval_episodes.jsonl", [{"step": tr.step, **e} for e in eps])
        log(f"[train {cfg.method} {dataset_name} s{cfg.seed}] step {tr.step}: success {rate:.2f} "
            f"({time.monotonic() - t0:.1f}s eval)")

    total = cfg.bc_steps if cfg.method == "bc" else cfg.steps
    if cfg.method == "bc" and cfg.bc_steps < 1:
        raise ValueError("TrainConfig.bc_steps must be >= 1 for --method bc")
    contrastive = cfg.method in ("cpl", "ppl")
    if contrastive and tr.diag_start is None and tr.step == cfg.bc_steps:  # started from a BC policy
        tr.diag_start = tr.diagnostics()
    t_last, n_last = time.monotonic(), 0
    todo = range(tr.step, total)
    for _ in progress(todo, desc=f"{cfg.method} {dataset_name} s{cfg.seed}", total=len(todo)):
        m = tr.train_step()
        tr.step += 1
        n_last += 1
        if contrastive and tr.step == cfg.bc_steps:  # the contrastive phase starts from here
            tr.diag_start = tr.diagnostics()
        if tr.step % cfg.log_every == 0:
            now = time.monotonic()
            _append_jsonl(out / "train_log.jsonl", [{"step": tr.step, **m, "updates_per_s": n_last / (now - t_last)}])
            t_last, n_last = now, 0
        if tr.step % cfg.eval_every == 0 or tr.step == total:
            if not tr.evals or tr.evals[-1]["step"] != tr.step:
                do_eval()
        if tr.step % cfg.checkpoint_every == 0 or tr.step == total:
            checkpoint()
        if stop_after is not None and tr.step >= stop_after and tr.step < total:
            checkpoint()
            return None
    if not tr.evals or tr.evals[-1]["step"] != tr.step:  # steps == 0 or resumed at the end
        do_eval()
        checkpoint()

    row = lambda step, metric, value: make_row("ppl", cfg.run_name or cfg.method, cfg.model_name, dataset_name,  # noqa: E731
                                               cfg.seed, step, metric, float(value))
    rows = [row(e["step"], "success", e["success"]) for e in tr.evals]
    final, best = tr.evals[-1]["success"], max(e["success"] for e in tr.evals)
    rows += [row(-1, "success", final), row(-1, "success_best", best)]
    summary = {"final": final, "best": best, "evals": tr.evals, "data": data.meta}
    if contrastive:
        end = tr.diagnostics()
        summary["diagnostics"] = {"start": tr.diag_start, "end": end}
        rows += [row(-1, k, v) for k, v in end.items()]
        rows += [row(cfg.bc_steps, k, v) for k, v in (tr.diag_start or {}).items()]
    if cfg.method == "bc":
        torch.save({"policy": tr.policy.state_dict(), "bc_steps": cfg.bc_steps,
                    "dataset": os.path.abspath(cfg.dataset), "config": asdict(cfg)}, out / "policy.pt")
    write_run(out, rows, config=cfg, seed=cfg.seed, started=started, extra=summary)
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    from repro.cli import parse_dataclass

    cfg = parse_dataclass(TrainConfig, argv)
    s = train(cfg)
    print(f"final success {s['final']:.2f}, best {s['best']:.2f}")


if __name__ == "__main__":
    main()
