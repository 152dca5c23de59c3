"""config/replicate-seed1.yaml: an overlay that re-runs the tiny tier with other data and method seeds."""
from pathlib import Path

import yaml
from snakemake.utils import update_config

from repro.config import validate_config

ROOT = Path(__file__).resolve().parents[1]


def _seeds(cfg):
    """Every seed setting of a config: (path, value) for keys named seed / seeds / *_seeds."""
    out = {}

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                if (k == "seed" or k == "seeds" or k.endswith("_seeds")) and not isinstance(v, bool):
                    out[path + (k,)] = v
                else:
                    walk(v, path + (k,))
    walk(cfg, ())
    return out


def test_overlay_validates_and_changes_every_data_and_method_seed():
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    over = yaml.safe_load((ROOT / "config" / "replicate-seed1.yaml").read_text())
    merged = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    update_config(merged, over)  # what snakemake --configfile config/config.yaml <overlay> does
    validate_config(merged, source="config/config.yaml + config/replicate-seed1.yaml")
    before, after = _seeds(base), _seeds(merged)
    assert before.keys() == after.keys()
    # kept on purpose: the report's bootstrap (not a data or method seed) and the two fixed distractor policies
    # that the MetaWorld behaviour policies mix with the expert (part of the task's design; their mixture weights
    # are re-calibrated, and the episodes re-drawn, with the replicate's seeds)
    kept = {("report", "bootstrap_seed"), ("ppl", "calibrate", "distractor_seeds")}
    unchanged = {k for k in before if before[k] == after[k]} - kept
    assert not unchanged, f"the replicate keeps these seeds: {sorted(unchanged)}"
    # method seeds do not overlap the committed run's, and every seed list keeps its length
    for k, v in before.items():
        if isinstance(v, list) and k not in kept:
            assert len(after[k]) == len(v) and not set(after[k]) & set(v), k
