"""Run metadata attached to every result: which code, config, packages and hardware produced it."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent

# Packages whose versions change results; recorded with every run.
TRACKED_PACKAGES = (
    "torch", "transformers", "trl", "accelerate", "math-verify", "snakemake",
    "metaworld", "mujoco", "gymnasium", "numpy", "pandas", "scipy",
)
# Paths whose changes do not make code "dirty": they are outputs, not inputs.
OUTPUT_PATHS = ("results", "reports")


def utc_now() -> str:
    """Current UTC time, ISO 8601 with seconds, e.g. 2026-11-25T10:00:00Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git(*args: str, cwd: Path = REPO_ROOT) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(cwd: Path = REPO_ROOT) -> tuple[str, bool]:
    """(commit, dirty). commit is 'unknown' outside a git checkout; results/ and reports/ never count as dirty."""
    commit = _git("rev-parse", "HEAD", cwd=cwd) or "unknown"
    excludes = [f":(exclude){p}" for p in OUTPUT_PATHS]
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", *excludes, cwd=cwd)
    return commit, bool(status)


def _to_plain(config: Any) -> Any:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    return config


def config_hash(config: Any) -> str:
    """Short, order-independent hash of a config (dict or dataclass)."""
    blob = json.dumps(_to_plain(config), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name with its x86 family and model numbers when /proc/cpuinfo has them, e.g. 'AMD EPYC
    (family 25 model 17)': cloud CPUs often report a bare vendor name, and the numbers tell the types apart (the
    tiny tier's wall time and some verdicts differ by CPU type). ``cpuinfo``: the file's text (default: read it);
    without it, platform.processor()."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor's block is enough
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine()
    if fields.get("cpu family") and fields.get("model"):
        name += f" (family {fields['cpu family']} model {fields['model']})"
    return name


def hardware() -> str:
    """One line describing the machine, e.g. 'x86_64, AMD EPYC (family 25 model 17), 2 CPU cores, no GPU'."""
    desc = f"{platform.machine()}, {cpu_model()}, {os.cpu_count()} CPU cores"
    try:
        import torch

        if torch.cuda.is_available():
            names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
            return f"{desc}, {torch.cuda.device_count()}x GPU ({', '.join(names)})"
    except Exception:  # torch missing or a broken driver: hardware is still describable
        pass
    return f"{desc}, no GPU"


def run_metadata(config: Any = None, seed: int | None = None, command: str | None = None,
                 started: str | None = None) -> dict[str, Any]:
    """All provenance fields of one run. ``finished`` is filled by :func:`finish`."""
    commit, dirty = git_state()
    return {
        "commit": commit,
        "dirty": dirty,
        "config_hash": config_hash(config) if config is not None else None,
        "config": _to_plain(config),
        "seed": seed,
        "versions": package_versions(),
        "hardware": hardware(),
        "command": command if command is not None else " ".join([Path(sys.executable).name, *sys.argv]),
        "started": started or utc_now(),
        "finished": None,
    }


def finish(meta: dict[str, Any]) -> dict[str, Any]:
    """Stamp the finish time on a metadata dict and return it."""
    meta["finished"] = utc_now()
    return meta
