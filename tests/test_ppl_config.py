"""The `ppl` config sections of every tier match config/schema/ppl.schema.yaml and the issue's sizes."""
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = yaml.safe_load((ROOT / "config/schema/ppl.schema.yaml").read_text())


def _section(tier_file):
    return yaml.safe_load((ROOT / "config" / tier_file).read_text())["ppl"]


@pytest.mark.parametrize("tier_file", ["config.yaml", "ci.yaml", "paper.yaml"])
def test_sections_are_valid(tier_file):
    sec = _section(tier_file)
    jsonschema.validate(sec, SCHEMA)
    from methods.ppl.train import TrainConfig

    TrainConfig(**sec["train"])  # every train key is a TrainConfig field


def test_tier_sizes():
    tiny, paper = _section("config.yaml"), _section("paper.yaml")
    assert len(tiny["tasks"]) >= 3 and len(tiny["seeds"]) >= 2 and set(tiny["methods"]) == {"sft", "cpl", "piql", "ppl"}
    assert set(tiny["kinds"]) == {"homogeneous", "heterogeneous"}
    assert len(paper["tasks"]) == 6 and len(paper["seeds"]) == 4
    assert paper["collect"]["episodes"] == 2500 and paper["preferences"]["segments"] == 20000
    assert paper["train"]["steps"] == 500_000 and paper["train"]["eval_episodes"] == 25


def test_unknown_key_is_rejected():
    sec = _section("config.yaml")
    sec["train"]["learning_rate"] = 1e-3
    with pytest.raises(jsonschema.ValidationError, match="learning_rate"):
        jsonschema.validate(sec, SCHEMA)


def test_sweep_runs_and_points_round_trip():
    from methods.ppl.experiments import sweep_point, sweep_runs

    cfg = {"tasks": ["door-open"], "sweep": {"task": "plate-slide", "kinds": ["heterogeneous"], "seeds": [0],
                                             "alpha": [0.1, 0.3], "kl_ratio": [1.0, 0.3],
                                             "piql_start": ["scratch", "bc"]}}
    runs = sweep_runs(cfg)
    assert runs == ["cpl_a0.1", "cpl_a0.3", "ppl_a0.1_k1", "ppl_a0.1_k0.3", "ppl_a0.3_k1", "ppl_a0.3_k0.3",
                    "piql_scratch", "piql_bc"]
    assert sweep_point("ppl_a0.3_k0.3") == {"method": "ppl", "alpha": 0.3, "lam": pytest.approx(0.09)}
    assert sweep_point("piql_scratch") == {"method": "piql", "from_bc": False}
    assert sweep_point("piql_bc") == {"method": "piql", "from_bc": True}
    from repro.report.tables import SWEEP_POINT
    assert all(SWEEP_POINT.match(r) for r in runs) and not SWEEP_POINT.match("piql")
    with pytest.raises(ValueError, match="piql_start"):
        sweep_runs({**cfg, "sweep": {**cfg["sweep"], "piql_start": ["warm"]}})
    with pytest.raises(ValueError, match="reported task"):
        sweep_runs({**cfg, "tasks": ["plate-slide"]})
