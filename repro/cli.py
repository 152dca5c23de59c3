"""A command line generated from a config dataclass (CleanRL style, without extra dependencies).

    @dataclass
    class Args:
        lr: float = 1e-4   # learning rate
    args = parse_dataclass(Args)      # --lr 3e-4

Fields become ``--field-name`` flags; bools take true/false; ``list[...]`` fields take
comma-separated values; ``Optional`` fields accept ``none``. The comment after a field (or its
``metadata["help"]``) becomes the flag's help text.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import types
import typing
from typing import Any, Sequence, TypeVar

T = TypeVar("T")

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def _field_comments(cls: type) -> dict[str, str]:
    """Map field name -> its trailing ``# comment`` in the class source (best effort)."""
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    found = {}
    for line in src.splitlines():
        m = re.match(r"\s+(\w+)\s*:[^#]*#\s*(.+)$", line)
        if m:
            found[m.group(1)] = m.group(2).strip()
    return found


def _parser_for(tp: Any):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        base = _parser_for(inner[0])
        return lambda s: None if s.lower() in ("none", "null", "") else base(s)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        item = _parser_for(args[0]) if args else str
        return lambda s: [item(x) for x in s.split(",") if x.strip()] if s else []
    if tp is bool:
        def parse_bool(s: str) -> bool:
            if s.lower() in _TRUE:
                return True
            if s.lower() in _FALSE:
                return False
            raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")
        return parse_bool
    if tp in (int, float, str):
        return tp
    return str


def build_parser(cls: type, description: str | None = None) -> argparse.ArgumentParser:
    hints = typing.get_type_hints(cls)
    comments = _field_comments(cls)
    parser = argparse.ArgumentParser(description=description or (cls.__doc__ or "").strip(),
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        help_text = (f.metadata.get("help") or comments.get(f.name, "")).replace("%", "%%")  # argparse formats %
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=_parser_for(hints[f.name]),
                            default=default, required=required, help=help_text)
    return parser


def parse_dataclass(cls: type[T], argv: Sequence[str] | None = None, description: str | None = None) -> T:
    """Parse ``argv`` (default: sys.argv[1:]) into an instance of the dataclass ``cls``."""
    ns = build_parser(cls, description).parse_args(argv)
    return cls(**vars(ns))


def to_argv(values: dict[str, Any]) -> list[str]:
    """The inverse, for rules and tests: {"lr": 1e-4, "tasks": ["a","b"]} -> ["--lr", "0.0001", "--tasks", "a,b"]."""
    argv = []
    for key, val in values.items():
        if isinstance(val, bool):
            val = str(val).lower()
        elif isinstance(val, (list, tuple)):
            val = ",".join(str(v) for v in val)
        elif val is None:
            val = "none"
        argv += [f"--{key.replace('_', '-')}", str(val)]
    return argv
