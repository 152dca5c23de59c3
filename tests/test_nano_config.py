"""Every tier's `nano` config section maps onto the entry points' dataclasses (no drift)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmarks.arith.make_data import MakeDataArgs
from benchmarks.arith.model import count_parameters, build_model
from benchmarks.arith.tokenizer import build_tokenizer
from benchmarks.arith.train_nano import NanoSFTArgs
from repro.cli import parse_dataclass, to_argv

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("tier", ["config", "ci", "paper"])
def test_nano_section_builds_the_entry_point_args(tier):
    section = yaml.safe_load((ROOT / "config" / f"{tier}.yaml").read_text())["nano"]
    data = parse_dataclass(MakeDataArgs, to_argv(section["data"]))
    data.specs()  # validates the task knobs (hard split harder than training)
    assert data.n_test >= (500 if tier != "ci" else 1)
    sft = parse_dataclass(NanoSFTArgs, to_argv({**section["model"], **section["train"]}))
    params = count_parameters(build_model(sft.model_spec(), build_tokenizer()))
    if tier == "ci":
        assert params < 500_000  # the ci model is smaller
    else:
        assert 500_000 <= params <= 2_000_000
    assert section["eval"]["protocol"] and {"arith_test", "arith_hard"} <= set(section["eval"]["datasets"])
