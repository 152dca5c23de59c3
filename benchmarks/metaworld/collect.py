"""Offline MetaWorld datasets with policy labels: collection (2+ worker processes) and a loader.

One HDF5 file per dataset, D4RL-style (flat per-step arrays):

    observations (N, 39) float32   actions (N, 4) float32 (raw Gaussian samples; the env clips)
    next_observations (N, 39)      rewards (N,) float32   terminals (N,) bool   timeouts (N,) bool
    success (N,) bool (info["success"] at that step)
    policy_id (N,) int32   behavior_mean (N, 4) float32   behavior_std (N, 4) float32   (policy labels)
    episodes/{start, length, success, policy_id, seed} (E,)
    attrs: schema_version, task, kind, seed, policies (JSON: spec + calibrated and measured success)

:func:`load_dataset` returns the familiar dict of arrays (plus ``"episodes"`` and ``"metadata"``)
and raises :class:`DatasetError` naming the file for a truncated, corrupted or wrong-schema file.

    python -m benchmarks.metaworld.collect --task door-open --kind heterogeneous \
        --calibration work/tiny/metaworld/door-open/calibration.json --episodes 40 --out work/.../heterogeneous.hdf5
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks.metaworld.envs import check_task, stratified_seeds
from benchmarks.metaworld.policies import BehaviourSpec, make_pool, run_episodes
from repro.io import atomic_path

SCHEMA_VERSION = 1
STEP_KEYS = {  # key -> (dtype, trailing shape)
    "observations": ("float32", (39,)),
    "next_observations": ("float32", (39,)),
    "actions": ("float32", (4,)),
    "rewards": ("float32", ()),
    "terminals": ("bool", ()),
    "timeouts": ("bool", ()),
    "success": ("bool", ()),
    "policy_id": ("int32", ()),
    "behavior_mean": ("float32", (4,)),
    "behavior_std": ("float32", (4,)),
}
EPISODE_KEYS = ("start", "length", "success", "policy_id", "seed")
KINDS = ("homogeneous", "heterogeneous")


class DatasetError(ValueError):
    """A dataset file is missing, truncated, corrupted or of the wrong schema; names the file."""


def episodes_to_arrays(episodes: Sequence[dict[str, np.ndarray]], seeds: Sequence[int]) -> dict[str, Any]:
    """Concatenate rollouts (see policies.rollout) into the flat D4RL layout."""
    data: dict[str, list] = {k: [] for k in STEP_KEYS}
    ep = {k: [] for k in EPISODE_KEYS}
    start = 0
    for e, seed in zip(episodes, seeds):
        T = len(e["rewards"])
        obs = e["observations"]
        nxt = np.concatenate([obs[1:], obs[-1:]], axis=0)  # last next-obs: not logged; repeated (timeout)
        data["observations"].append(obs)
        data["next_observations"].append(nxt)
        data["actions"].append(e["actions"])
        data["rewards"].append(e["rewards"])
        data["terminals"].append(e["terminals"])
        data["timeouts"].append(e["timeouts"])
        data["success"].append(e["step_success"])
        data["policy_id"].append(e["policy_id"])
        data["behavior_mean"].append(e["mu"])
        data["behavior_std"].append(np.repeat(e["sigma"][:, None], 4, axis=1))
        ep["start"].append(start)
        ep["length"].append(T)
        ep["success"].append(bool(e["success"]))
        ep["policy_id"].append(int(e["policy_id"][0]))
        ep["seed"].append(int(seed))
        start += T
    out = {k: np.concatenate(v).astype(STEP_KEYS[k][0]) for k, v in data.items()}
    out["episodes"] = {k: np.asarray(v) for k, v in ep.items()}
    return out


def write_dataset(path: str | os.PathLike, data: dict[str, Any], metadata: dict[str, Any]) -> Path:
    """Write ``data`` (flat step arrays + ``episodes`` dict) and ``metadata`` to HDF5 atomically."""
    import h5py

    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for k in STEP_KEYS:
                f.create_dataset(k, data=data[k], compression="gzip", compression_opts=4)
            g = f.create_group("episodes")
            for k in EPISODE_KEYS:
                g.create_dataset(k, data=data["episodes"][k])
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["num_steps"] = int(len(data["rewards"]))
            for k, v in metadata.items():
                f.attrs[k] = json.dumps(v) if not isinstance(v, (str, int, float)) else v
    return path


def load_dataset(path: str | os.PathLike) -> dict[str, Any]:
    """Load a dataset file: dict of the STEP_KEYS arrays + ``episodes`` (dict) + ``metadata`` (dict)."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: dataset file does not exist")
    try:
        with h5py.File(path, "r") as f:
            version = f.attrs.get("schema_version")
            if version != SCHEMA_VERSION:
                raise DatasetError(f"{path}: schema_version {version!r}, expected {SCHEMA_VERSION}")
            missing = [k for k in STEP_KEYS if k not in f] + [f"episodes/{k}" for k in EPISODE_KEYS
                                                              if f"episodes/{k}" not in f]
            if missing:
                raise DatasetError(f"{path}: missing arrays {missing}")
            out: dict[str, Any] = {k: f[k][()] for k in STEP_KEYS}
            out["episodes"] = {k: f["episodes"][k][()] for k in EPISODE_KEYS}
            meta = {}
            for k, v in f.attrs.items():
                if isinstance(v, (bytes, str)):
                    try:
                        v = json.loads(v)
                    except (json.JSONDecodeError, TypeError):
                        pass
                meta[k] = v.item() if isinstance(v, np.generic) else v
            out["metadata"] = meta
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        raise DatasetError(f"{path}: cannot read dataset (truncated or corrupted HDF5 file?): {e}") from None
    _check_consistent(path, out)
    return out


def _check_consistent(path: Path, d: dict[str, Any]) -> None:
    n = int(d["metadata"].get("num_steps", -1))
    for k, (dtype, shape) in STEP_KEYS.items():
        a = d[k]
        if a.shape != (n, *shape):
            raise DatasetError(f"{path}: array {k!r} has shape {a.shape}, expected {(n, *shape)}")
    ep = d["episodes"]
    if int(ep["length"].sum()) != n or (len(ep["start"]) and int(ep["start"][-1] + ep["length"][-1]) != n):
        raise DatasetError(f"{path}: episode table does not cover the {n} steps")
    if not np.isfinite(d["observations"]).all() or not np.isfinite(d["actions"]).all():
        raise DatasetError(f"{path}: non-finite observations or actions")


def dataset_policies(kind: str, calibration: list[dict], sigma: float) -> list[tuple[BehaviourSpec, float, dict]]:
    """(spec, fraction of episodes, label info) for a dataset kind from a task's calibration records.

    homogeneous: the policy calibrated nearest 50% success; heterogeneous: the ~20% and ~50% policies,
    half of the episodes each.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; valid: {', '.join(KINDS)}")
    by_target = sorted(calibration, key=lambda r: r["target"])
    hi = min(by_target, key=lambda r: abs(r["target"] - 0.5))
    lo = min(by_target, key=lambda r: abs(r["target"] - 0.2))
    chosen = [(hi, 1.0)] if kind == "homogeneous" else [(lo, 0.5), (hi, 0.5)]
    out = []
    for pid, (rec, frac) in enumerate(chosen):
        spec = BehaviourSpec(rec["task"], float(rec["w"]), float(sigma), int(rec["distractor_seed"]), policy_id=pid)
        out.append((spec, frac, {"policy_id": pid, **asdict(spec), "target_success": rec["target"],
                                 "calibrated_success": rec["measured_success"],
                                 "calibration_episodes": rec["measured_episodes"],
                                 "calibration_reached": rec.get("reached", True),
                                 "calibration_within_tolerance": rec.get("within_tolerance", True),
                                 "calibration_warnings": rec.get("warnings", [])}))
    return out


def interleave(counts: Sequence[int]) -> list[int]:
    """Policy index of each episode, the policies spread evenly over the sequence.

    Policy ``k``'s ``j``-th episode sits at fractional position (j + 1/2) / counts[k]; merging
    these gives e.g. 0, 1, 0, 1, ... for two equal counts.
    """
    slots = [((j + 0.5) / n, k) for k, n in enumerate(counts) for j in range(n)]
    return [k for _, k in sorted(slots)]


def collect(task: str, kind: str, calibration: list[dict], episodes: int, seed: int = 0, sigma: float = 0.3,
            workers: int = 2, log=print) -> tuple[dict[str, Any], dict[str, Any]]:
    """Collect one dataset; returns (arrays, metadata).

    Episode seeds are layout-stratified from ``10**4 * seed`` (:func:`envs.stratified_seeds`: the
    i-th episode gets layout i mod 50) and the policies are interleaved over them
    (:func:`interleave`), so each policy sees distinct layouts spread over all of them: success
    depends strongly on the layout, and sampling layouts with replacement made a 20-episode
    policy's dataset success rate far from its calibrated one.
    """
    check_task(task)
    policies = dataset_policies(kind, calibration, sigma)
    counts = [int(round(frac * episodes)) for _, frac, _ in policies]
    counts[-1] = episodes - sum(counts[:-1])
    seeds = stratified_seeds(10**4 * int(seed), episodes)
    jobs = [(policies[k][0], s) for k, s in zip(interleave(counts), seeds)]
    t0 = time.monotonic()
    eps = run_episodes(jobs, workers=workers, record=True)
    dt = time.monotonic() - t0
    data = episodes_to_arrays(eps, seeds)
    infos = []
    for (spec, _, info), n in zip(policies, counts):
        mask = data["episodes"]["policy_id"] == spec.policy_id
        infos.append({**info, "episodes": n, "dataset_success": float(data["episodes"]["success"][mask].mean())})
    meta = {"task": task, "kind": kind, "seed": int(seed), "policies": infos, "episodes": int(episodes),
            "horizon": int(data["episodes"]["length"].max()), "collect_seconds": round(dt, 2),
            "workers": int(workers)}
    log(f"[collect {task}/{kind}] {episodes} episodes, {len(data['rewards'])} steps in {dt:.1f}s; "
        + "; ".join(f"policy {p['policy_id']} w={p['w']:.3f}: success {p['dataset_success']:.2f}" for p in infos))
    return data, meta


@dataclass
class CollectConfig:
    """Collect one offline dataset (homogeneous or heterogeneous) for one MetaWorld task."""

    task: str  # MetaWorld task, e.g. door-open
    kind: str = "homogeneous"  # homogeneous (one ~50% policy) | heterogeneous (~20% + ~50% policies)
    calibration: str = ""  # calibration.json written by benchmarks.metaworld.calibrate
    episodes: int = 40  # episodes in the dataset
    seed: int = 0  # dataset seed (layout-stratified episode seeds from 10**4*seed)
    sigma: float = 0.3  # behaviour action std (must match the calibration)
    workers: int = 2  # rollout worker processes
    out: str = "dataset.hdf5"  # output HDF5 file


def load_calibration(path: str | os.PathLike, task: str) -> list[dict]:
    path = Path(path)
    try:
        recs = json.loads(path.read_text())["results"]
    except FileNotFoundError:
        raise DatasetError(f"{path}: calibration file does not exist") from None
    except (json.JSONDecodeError, KeyError) as e:
        raise DatasetError(f"{path}: not a calibration file (need a 'results' list): {e}") from None
    recs = [r for r in recs if r.get("task") == task]
    if not recs:
        raise DatasetError(f"{path}: no calibration records for task {task!r}")
    return recs


def main(argv: Sequence[str] | None = None) -> None:
    from repro.cli import parse_dataclass

    cfg = parse_dataclass(CollectConfig, argv)
    cal = load_calibration(cfg.calibration, cfg.task)
    cal_meta = json.loads(Path(cfg.calibration).read_text())
    for key in ("sigma",):
        if key in cal_meta and cal_meta[key] != getattr(cfg, key):
            raise ValueError(f"--{key.replace('_', '-')} {getattr(cfg, key)} differs from {cfg.calibration}: "
                             f"{key}={cal_meta[key]}")
    data, meta = collect(cfg.task, cfg.kind, cal, cfg.episodes, cfg.seed, cfg.sigma, cfg.workers)
    meta["calibration_file"] = str(cfg.calibration)
    write_dataset(cfg.out, data, meta)
    print(f"wrote {cfg.out}")


if __name__ == "__main__":
    main()
