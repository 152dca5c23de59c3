"""A 4-episode button-press dataset with return-labelled dense preferences: the smallest real input of the PPL
trainer (tests, ``make gpu-smoke``). Two behaviour policies (~60% and ~20% expert) make it heterogeneous."""
from __future__ import annotations

from pathlib import Path


def write_tiny_dataset(out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``data.hdf5`` and ``prefs.hdf5`` under ``out_dir``; returns their paths."""
    from benchmarks.metaworld.collect import episodes_to_arrays, write_dataset
    from benchmarks.metaworld.policies import BehaviourSpec, run_episodes
    from benchmarks.metaworld.preferences import label_dataset, write_prefs

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    specs = [BehaviourSpec("button-press", 0.6, 0.3, 1, 0), BehaviourSpec("button-press", 0.2, 0.3, 0, 1)]
    seeds = [1, 2, 3, 4]
    arrays = episodes_to_arrays(run_episodes([(specs[i % 2], s) for i, s in enumerate(seeds)], workers=2), seeds)
    write_dataset(d / "data.hdf5", arrays, {"task": "button-press", "kind": "heterogeneous", "seed": 0})
    write_prefs(d / "prefs.hdf5", label_dataset(arrays, 16, 64, "return", "dense", 2, seed=0),
                {"segment_length": 64, "teacher": "return"})
    return d / "data.hdf5", d / "prefs.hdf5"
