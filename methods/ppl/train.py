"""Offline training of SFT / CPL / P-IQL / PPL on a labelled MetaWorld dataset, with evaluation.

One run = one method x one dataset x one seed. Every ``eval_every`` steps the policy is evaluated on
``eval_episodes`` fixed episodes (deterministic mean action; success = success at any step); a
checkpoint (models, optimisers, RNG states, eval history) is written every ``checkpoint_every``
steps and a killed run started again with the same ``--out`` resumes from it.

Outputs in ``--out``: metrics.json (rows: ``success`` per eval step, ``success`` at step -1 = final,
``success_best`` at step -1), train_log.jsonl (losses, updates/s), eval_episodes.jsonl.

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

from methods.ppl.losses import (awr_weights, bc_loss, bradley_terry_loss, cpl_loss, expectile_loss,
                                ppl_loss)
from methods.ppl.policy import GaussianPolicy, mlp

METHODS = ("sft", "cpl", "piql", "ppl")
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
    alpha: float = 0.1  # temperature alpha of CPL/PPL
    bias: float = 0.5  # CPL conservative bias lambda
    lam: float = 1.0  # PPL weight of the contrastive KL term
    rm_steps: int = 10_000  # P-IQL reward-model steps
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
    model_name: str = "gaussian-mlp"  # model column of the results


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
        self.cfg, self.data = cfg, data
        torch.manual_seed(cfg.seed)
        self.g = torch.Generator().manual_seed(cfg.seed)
        self.policy = GaussianPolicy(39, 4, cfg.hidden, cfg.dropout, cfg.init_std, cfg.learn_std)
        self.policy.set_obs_stats(data.obs)
        self.opt = torch.optim.Adam([p for p in self.policy.parameters() if p.requires_grad], lr=cfg.lr)
        self.step = 0
        self.evals: list[dict[str, Any]] = []
        self.nets: dict[str, torch.nn.Module] = {}
        if cfg.method == "piql":
            h = cfg.hidden
            self.nets = {"reward": mlp(43, h, 1), "q1": mlp(43, h, 1), "q2": mlp(43, h, 1), "v": mlp(39, h, 1),
                         "q1_t": mlp(43, h, 1), "q2_t": mlp(43, h, 1)}
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
            loss = ppl_loss(lp[: c.batch], lp[c.batch:], kl[: c.batch], kl[c.batch:], c.alpha, c.lam)
        self._update(loss)
        return {f"{c.method}_loss": float(loss)}

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
        self.rew_hat = (r - r.mean()) / r.std().clamp_min(1e-6)  # standardised learned reward

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
        return {"v_loss": float(v_loss), "q_loss": float(q_loss), "pi_loss": float(pi_loss)}

    def _update(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def train_step(self) -> dict[str, float]:
        c = self.cfg
        if c.method == "piql":
            return self.iql_step()
        if self.step < c.bc_steps:
            return self.bc_step(self.data.sample_steps(c.bc_batch, self.g))
        if c.method == "sft":
            return self.sft_pref_step()
        return self.contrastive_step()

    # ---- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        st = {"step": self.step, "evals": self.evals, "policy": self.policy.state_dict(),
              "opt": self.opt.state_dict(), "g": self.g.get_state(), "torch_rng": torch.get_rng_state(),
              "config": asdict(self.cfg)}
        if self.cfg.method == "piql":
            st.update(nets={k: v.state_dict() for k, v in self.nets.items()}, rm_opt=self.rm_opt.state_dict(),
                      q_opt=self.q_opt.state_dict(), v_opt=self.v_opt.state_dict(), rm_step=self.rm_step)
        return st

    def load(self, st: dict[str, Any]) -> None:
        self.step, self.evals = st["step"], st["evals"]
        self.policy.load_state_dict(st["policy"])
        self.opt.load_state_dict(st["opt"])
        self.g.set_state(st["g"])
        torch.set_rng_state(st["torch_rng"])
        if self.cfg.method == "piql":
            for k, v in st["nets"].items():
                self.nets[k].load_state_dict(v)
            self.rm_opt.load_state_dict(st["rm_opt"])
            self.q_opt.load_state_dict(st["q_opt"])
            self.v_opt.load_state_dict(st["v_opt"])
            self.rm_step = st["rm_step"]


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

    def do_eval():
        t0 = time.monotonic()
        eps = evaluate_policy(tr.policy, data.task, cfg.eval_episodes)
        rate = float(np.mean([e["success"] for e in eps]))
        tr.evals.append({"step": tr.step, "success": rate})
        _append_jsonl(out / "eval_episodes.jsonl", [{"step": tr.step, **e} for e in eps])
        log(f"[train {cfg.method} {dataset_name} s{cfg.seed}] step {tr.step}: success {rate:.2f} "
            f"({time.monotonic() - t0:.1f}s eval)")

    t_last, n_last = time.monotonic(), 0
    todo = range(tr.step, cfg.steps)
    for _ in progress(todo, desc=f"{cfg.method} {dataset_name} s{cfg.seed}", total=len(todo)):
        m = tr.train_step()
        tr.step += 1
        n_last += 1
        if tr.step % cfg.log_every == 0:
            now = time.monotonic()
            _append_jsonl(out / "train_log.jsonl", [{"step": tr.step, **m, "updates_per_s": n_last / (now - t_last)}])
            t_last, n_last = now, 0
        if tr.step % cfg.eval_every == 0 or tr.step == cfg.steps:
            if not tr.evals or tr.evals[-1]["step"] != tr.step:
                do_eval()
        if tr.step % cfg.checkpoint_every == 0 or tr.step == cfg.steps:
            checkpoint()
        if stop_after is not None and tr.step >= stop_after and tr.step < cfg.steps:
            checkpoint()
            return None
    if not tr.evals or tr.evals[-1]["step"] != tr.step:  # steps == 0 or resumed at the end
        do_eval()
        checkpoint()

    rows = [make_row("ppl", cfg.method, cfg.model_name, dataset_name, cfg.seed, e["step"], "success", e["success"])
            for e in tr.evals]
    final, best = tr.evals[-1]["success"], max(e["success"] for e in tr.evals)
    rows += [make_row("ppl", cfg.method, cfg.model_name, dataset_name, cfg.seed, -1, "success", final),
             make_row("ppl", cfg.method, cfg.model_name, dataset_name, cfg.seed, -1, "success_best", best)]
    summary = {"final": final, "best": best, "evals": tr.evals, "data": data.meta}
    write_run(out, rows, config=cfg, seed=cfg.seed, started=started, extra=summary)
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    from repro.cli import parse_dataclass

    cfg = parse_dataclass(TrainConfig, argv)
    s = train(cfg)
    print(f"final success {s['final']:.2f}, best {s['best']:.2f}")


if __name__ == "__main__":
    main()
