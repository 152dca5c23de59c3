"""Workflow config validation: every tier's YAML is checked against config/schema/ at start-up.

The schema is composed from ``main.schema.yaml`` (top-level keys) and one
``<section>.schema.yaml`` per stage. An unknown key, a wrong type or a missing field stops the run
with a message naming the key's full path and the config file.

    python -m repro.config config/ci.yaml        # check a config by hand
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "config" / "schema"


class ConfigError(ValueError):
    """The config does not match the schema; the message names the offending key."""


def load_schema(schema_dir: str | Path = SCHEMA_DIR) -> dict[str, Any]:
    """main.schema.yaml with each stage's ``<section>.schema.yaml`` inlined under properties.<section>."""
    schema_dir = Path(schema_dir)
    schema = yaml.safe_load((schema_dir / "main.schema.yaml").read_text())
    for section_file in sorted(schema_dir.glob("*.schema.yaml")):
        section = section_file.name.removesuffix(".schema.yaml")
        if section == "main":
            continue
        if section not in schema.get("properties", {}):
            raise ConfigError(f"{section_file}: no top-level key {section!r} in main.schema.yaml")
        schema["properties"][section] = yaml.safe_load(section_file.read_text())
        if section not in schema["required"]:
            schema["required"].append(section)
    return schema


def _key_path(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _describe(err: jsonschema.ValidationError) -> str:
    where = _key_path(err.absolute_path)
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        keys = ", ".join(f"{where}.{k}" if err.absolute_path else k for k in extra)
        return f"unknown key {keys} (allowed here: {', '.join(allowed)})"
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return f"missing field {where + '.' if err.absolute_path else ''}{missing}"
    return f"{where}: {err.message}"


def validate_config(config: dict[str, Any], source: str = "config",
                    schema_dir: str | Path = SCHEMA_DIR) -> dict[str, Any]:
    """Raise ConfigError listing every problem (key path first); return the config unchanged."""
    schema = load_schema(schema_dir)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n".join(f"  - {_describe(e)}" for e in errors)
        raise ConfigError(f"invalid config {source}:\n{lines}")
    return config


def load_and_validate(path: str | Path, schema_dir: str | Path = SCHEMA_DIR) -> dict[str, Any]:
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    return validate_config(config or {}, source=str(path), schema_dir=schema_dir)


if __name__ == "__main__":
    status = 0
    for arg in sys.argv[1:] or ["config/config.yaml"]:
        try:
            load_and_validate(arg)
            print(f"{arg}: ok")
        except ConfigError as e:
            print(e, file=sys.stderr)
            status = 1
    sys.exit(status)
