"""Scripted preference labels on 64-step segments of an offline MetaWorld dataset.

Teachers (spec ``ppl.md``):
- ``regret`` (default; PPL's premise): score(sigma) = sum_t gamma^t r_t + gamma^L V*(s_L) - V*(s_0), the
  segment's summed optimal advantage (= minus its regret), with V* an "oracle critic": an MLP fitted
  by regression on the discounted Monte-Carlo returns of (noisy) expert rollouts. The expert episodes
  are cut by the time limit, so the tail beyond the horizon is bootstrapped with the previous fit
  (``rounds`` >= 2): target_t = sum_{k<T-t} gamma^k r_{t+k} + gamma^{T-t} V_prev(s_T).
- ``return``: score(sigma) = sum_t r_t (partial return).
Label y = 1[score(sigma_1) < score(sigma_2)] (1 = the second segment is preferred), ties -> 0.5.
Comparison sets: ``dense`` (each segment in ``comparisons`` pairs) or ``sparse`` (each in one pair).

    python -m benchmarks.metaworld.oracle --task door-open --out oracle.pt          # fit V*
    python -m benchmarks.metaworld.preferences --dataset d.hdf5 --oracle oracle.pt --out prefs.hdf5
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks.metaworld.collect import DatasetError, episodes_to_arrays, load_dataset
from benchmarks.metaworld.policies import BehaviourSpec, run_episodes
from repro.io import atomic_path

TEACHERS = ("regret", "return")
MODES = ("dense", "sparse")
PREFS_SCHEMA_VERSION = 1


# ----------------------------------------------------------------------------------------------
# Oracle critic V*
# ----------------------------------------------------------------------------------------------
def discounted_returns(rewards: np.ndarray, gamma: float, tail: float = 0.0) -> np.ndarray:
    """G_t = sum_{k>=0} gamma^k r_{t+k} + gamma^{T-t} * tail for one episode; (T,) -> (T,)."""
    out = np.empty(len(rewards), dtype=np.float64)
    g = float(tail)
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * g
        out[t] = g
    return out


def fit_oracle_value(task: str, episodes: int = 20, sigma: float = 0.3, gamma: float = 0.99, rounds: int = 2,
                     steps: int = 1500, hidden: Sequence[int] = (128, 128), seed: int = 0, workers: int = 2,
                     log=print) -> dict[str, Any]:
    """Roll out the noisy expert and fit V* by (bootstrapped-tail) Monte-Carlo regression.

    Returns a checkpoint dict {state_dict, hidden, scale, gamma, task, ...} for :func:`load_value`.
    """
    import torch

    from methods.ppl.policy import mlp

    spec = BehaviourSpec(task, 0.0, sigma, 0, policy_id=0)
    seeds = [2 * 10**6 + 10**4 * seed + i for i in range(episodes)]
    eps = run_episodes([(spec, s) for s in seeds], workers=workers, record=True)
    data = episodes_to_arrays(eps, seeds)
    obs = torch.as_tensor(data["observations"], dtype=torch.float32)
    starts, lengths = data["episodes"]["start"], data["episodes"]["length"]
    last_next = torch.as_tensor(np.stack([data["observations"][s + n - 1] for s, n in zip(starts, lengths)]),
                                dtype=torch.float32)
    torch.manual_seed(seed)
    net = mlp(obs.shape[1], hidden, 1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    tails = np.zeros(len(starts))
    scale = 1.0
    for r in range(rounds):
        targets = np.concatenate([discounted_returns(data["rewards"][s:s + n], gamma, tail)
                                  for s, n, tail in zip(starts, lengths, tails)])
        if r == 0:
            scale = float(max(np.abs(targets).max(), 1e-6))
        y = torch.as_tensor(targets / scale, dtype=torch.float32)
        g = torch.Generator().manual_seed(seed + r)
        for _ in range(steps):
            idx = torch.randint(0, len(y), (256,), generator=g)
            loss = (net(obs[idx]).squeeze(-1) - y[idx]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            tails = (net(last_next).squeeze(-1) * scale).numpy()
            mse = float((net(obs).squeeze(-1) - y).pow(2).mean()) * scale**2
        log(f"[oracle {task}] round {r}: value MSE {mse:.2f} (return scale {scale:.1f})")
    success = float(np.mean(data["episodes"]["success"]))
    return {"state_dict": net.state_dict(), "hidden": list(hidden), "scale": scale, "gamma": gamma,
            "task": task, "expert_episodes": episodes, "expert_success": success, "mse": mse}


def load_value(path: str | os.PathLike):
    """Load an oracle checkpoint -> callable V(obs (N, 39) np) -> (N,) np, plus its gamma."""
    import torch

    from methods.ppl.policy import mlp

    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
        net = mlp(39, ck["hidden"], 1)
        net.load_state_dict(ck["state_dict"])
    except FileNotFoundError:
        raise DatasetError(f"{path}: oracle value checkpoint does not exist") from None
    except Exception as e:  # noqa: BLE001
        raise DatasetError(f"{path}: not a valid oracle value checkpoint: {e}") from None
    net.eval()
    scale = float(ck["scale"])

    def value(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.as_tensor(obs, dtype=torch.float32)).squeeze(-1).numpy().astype(np.float64) * scale

    return value, float(ck["gamma"])


# ----------------------------------------------------------------------------------------------
# Segments, scores, pairs
# ----------------------------------------------------------------------------------------------
def sample_segments(episodes: dict[str, np.ndarray], n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(episode index (n,), start within episode (n,)) with start + length < episode length."""
    lengths = episodes["length"]
    ok = np.nonzero(lengths > length)[0]
    if len(ok) == 0:
        raise DatasetError(f"no episode is longer than the segment length {length}")
    ep = rng.choice(ok, size=n)
    start = rng.integers(0, lengths[ep] - length)
    return ep.astype(np.int64), start.astype(np.int64)


def segment_index(episodes: dict[str, np.ndarray], ep: np.ndarray, start: np.ndarray, length: int) -> np.ndarray:
    """Flat step indices (n, length) of segments into the dataset's step arrays."""
    return episodes["start"][ep][:, None] + start[:, None] + np.arange(length)[None, :]


def regret_scores(rewards: np.ndarray, v0: np.ndarray, vL: np.ndarray, gamma: float) -> np.ndarray:
    """sum_t gamma^t r_t + gamma^L V(s_L) - V(s_0); rewards (n, L), v0, vL (n,) -> (n,)."""
    L = rewards.shape[1]
    disc = gamma ** np.arange(L)
    return rewards @ disc + gamma**L * vL - v0


def make_pairs(n_segments: int, mode: str, comparisons: int, rng: np.random.Generator) -> np.ndarray:
    """(P, 2) segment index pairs: ``sparse`` = a random perfect matching (each segment once);
    ``dense`` = ``comparisons`` independent matchings (each segment in that many pairs)."""
    if mode not in MODES:
        raise ValueError(f"unknown comparison mode {mode!r}; valid: {', '.join(MODES)}")
    rounds = 1 if mode == "sparse" else int(comparisons)
    pairs = []
    for _ in range(rounds):
        perm = rng.permutation(n_segments)
        pairs.append(perm[: n_segments // 2 * 2].reshape(-1, 2))
    return np.concatenate(pairs)


def labels_from_scores(s1: np.ndarray, s2: np.ndarray, tie_tol: float = 1e-9) -> np.ndarray:
    """y = 1[s1 < s2], 0.5 where |s1 - s2| <= tie_tol."""
    y = (s1 < s2).astype(np.float64)
    y[np.abs(s1 - s2) <= tie_tol] = 0.5
    return y


def label_dataset(data: dict[str, Any], n_segments: int, length: int = 64, teacher: str = "regret",
                  mode: str = "dense", comparisons: int = 4, value_fn=None, gamma: float = 0.99,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Sample segments of ``data`` and label pairs of them with the scripted teacher."""
    if teacher not in TEACHERS:
        raise ValueError(f"unknown teacher {teacher!r}; valid: {', '.join(TEACHERS)}")
    rng = np.random.default_rng([seed, 31337])
    ep, start = sample_segments(data["episodes"], n_segments, length, rng)
    idx = segment_index(data["episodes"], ep, start, length)
    rewards = data["rewards"][idx].astype(np.float64)
    if teacher == "return":
        score = rewards.sum(-1)
    else:
        if value_fn is None:
            raise ValueError("the regret teacher needs an oracle value function (value_fn / --oracle)")
        v0 = value_fn(data["observations"][idx[:, 0]])
        vL = value_fn(data["observations"][idx[:, -1] + 1])
        score = regret_scores(rewards, v0, vL, gamma)
    pairs = make_pairs(n_segments, mode, comparisons, rng)
    y = labels_from_scores(score[pairs[:, 0]], score[pairs[:, 1]])
    return {"seg_episode": ep, "seg_start": start, "score": score, "pairs": pairs.astype(np.int64), "label": y}


def write_prefs(path: str | os.PathLike, prefs: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    import h5py

    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for k, v in prefs.items():
                f.create_dataset(k, data=v)
            f.attrs["schema_version"] = PREFS_SCHEMA_VERSION
            for k, v in meta.items():
                f.attrs[k] = json.dumps(v) if not isinstance(v, (str, int, float)) else v
    return path


def load_prefs(path: str | os.PathLike) -> dict[str, Any]:
    import h5py

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: preference file does not exist")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("schema_version") != PREFS_SCHEMA_VERSION:
                raise DatasetError(f"{path}: not a preference file of schema {PREFS_SCHEMA_VERSION}")
            out: dict[str, Any] = {k: f[k][()] for k in ("seg_episode", "seg_start", "score", "pairs", "label")}
            out["metadata"] = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read preference file (truncated or corrupted?): {e}") from None
    return out


@dataclass
class PreferenceConfig:
    """Label segment pairs of one dataset with a scripted teacher."""

    dataset: str  # dataset HDF5 from benchmarks.metaworld.collect
    out: str = "prefs.hdf5"  # output HDF5 file
    teacher: str = "regret"  # regret | return
    mode: str = "dense"  # dense | sparse
    segments: int = 400  # number of segments sampled
    segment_length: int = 64  # steps per segment
    comparisons: int = 4  # pairs per segment in dense mode
    oracle: str = ""  # oracle value checkpoint (regret teacher)
    seed: int = 0  # sampling seed


def main(argv: Sequence[str] | None = None) -> None:
    from repro.cli import parse_dataclass

    cfg = parse_dataclass(PreferenceConfig, argv)
    data = load_dataset(cfg.dataset)
    value_fn, gamma = (None, 0.99)
    if cfg.teacher == "regret":
        value_fn, gamma = load_value(cfg.oracle)
    prefs = label_dataset(data, cfg.segments, cfg.segment_length, cfg.teacher, cfg.mode, cfg.comparisons,
                          value_fn, gamma, cfg.seed)
    pid = data["policy_id"][data["episodes"]["start"][prefs["seg_episode"]]]
    y = prefs["label"]
    pos = np.where(y >= 0.5, prefs["pairs"][:, 1], prefs["pairs"][:, 0])
    stats = {"pairs": int(len(y)), "ties": int((y == 0.5).sum()),
             "preferred_success_frac": float(data["episodes"]["success"][prefs["seg_episode"][pos]].mean()),
             "preferred_policy_hist": np.bincount(pid[pos]).tolist()}
    write_prefs(cfg.out, prefs, {**asdict(cfg), "gamma": gamma, "task": data["metadata"]["task"],
                                 "kind": data["metadata"]["kind"], "stats": stats})
    print(f"wrote {cfg.out}: {stats}")


if __name__ == "__main__":
    main()
