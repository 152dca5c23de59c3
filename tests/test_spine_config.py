"""Config validation: every tier validates; a bad key/type/missing field is named in the error."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import pytest
import yaml

from repro.cli import parse_dataclass, to_argv
from repro.config import ConfigError, load_and_validate, validate_config

TIERS = ["config/config.yaml", "config/ci.yaml", "config/paper.yaml"]


@pytest.mark.parametrize("path", TIERS)
def test_every_tier_config_is_valid(repo_root, path):
    cfg = load_and_validate(repo_root / path)
    assert cfg["tier"] in ("tiny", "ci", "paper")


def _tiny(repo_root):
    return yaml.safe_load((repo_root / "config/config.yaml").read_text())


def _first_section_key(cfg):
    """A (section, key) pair that exists in the config, to misspell."""
    for section, body in cfg.items():
        if isinstance(body, dict) and body:
            return section, next(iter(body))
    return None, None


def test_misspelled_top_level_key_is_named(repo_root):
    cfg = _tiny(repo_root)
    cfg["seeed"] = cfg.pop("seed")
    with pytest.raises(ConfigError) as e:
        validate_config(cfg, source="my.yaml")
    msg = str(e.value)
    assert "unknown key seeed" in msg and "missing field seed" in msg and "my.yaml" in msg


def test_misspelled_nested_key_is_named(repo_root):
    cfg = _tiny(repo_root)
    section, key = _first_section_key(cfg)
    if section is None:
        pytest.skip("no stage section has keys yet")
    cfg[section][key + "_typo"] = cfg[section].pop(key)
    with pytest.raises(ConfigError, match=f"unknown key {section}.{key}_typo"):
        validate_config(cfg)


def test_wrong_type_is_named(repo_root):
    cfg = _tiny(repo_root)
    cfg["threads"] = "two"
    with pytest.raises(ConfigError, match="threads: 'two' is not of type 'integer'"):
        validate_config(cfg)


def test_bad_yaml_names_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("tier: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_and_validate(p)


@dataclass
class _Args:
    lr: float = 1e-4  # learning rate
    steps: int = 5  # optimiser steps
    use_cpu: bool = True  # run on CPU
    tasks: list[str] = field(default_factory=lambda: ["a", "b"])  # task names
    limit: int | None = None  # optional cap


def test_cli_round_trip():
    args = parse_dataclass(_Args, ["--lr", "0.5", "--use-cpu", "false", "--tasks", "x,y,z", "--limit", "7"])
    assert args == _Args(lr=0.5, steps=5, use_cpu=False, tasks=["x", "y", "z"], limit=7)
    again = parse_dataclass(_Args, to_argv({"lr": 0.5, "use_cpu": False, "tasks": ["x", "y", "z"], "limit": 7}))
    assert again == args
    assert parse_dataclass(_Args, ["--limit", "none"]).limit is None
    with pytest.raises(SystemExit):
        parse_dataclass(_Args, ["--use-cpu", "maybe"])
