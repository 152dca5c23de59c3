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
