# Shared helpers for every rules file: config validation, the tier, the results version and the
# one function that builds every output path, so locations never drift between rules.
import os
import sys

sys.path.insert(0, workflow.basedir)  # make repro/, benchmarks/, methods/ importable without an install

from repro.config import validate_config
from repro.results import make_version

validate_config(config, source=", ".join(map(str, workflow.overwrite_configfiles)) or "config/config.yaml")

TIER = config["tier"]
WORK = f"work/{TIER}"
# One results/reports version per invocation; exported so that cluster jobs (which re-read this
# file in their own process) agree on it.
VERSION = config.get("version") or os.environ.setdefault("REPRO_VERSION", make_version())
os.environ["REPRO_VERSION"] = VERSION
PY = "python"  # the interpreter of the active environment (the .venv, or a rule's conda env)


def work(*parts):
    """Path of a run output: work/<tier>/<parts...> (git-ignored, reusable across invocations)."""
    return "/".join([WORK, *map(str, parts)])


def log_path(*parts):
    """Path of a rule's log file under work/<tier>/logs/."""
    return work("logs", *parts[:-1], f"{parts[-1]}.log")


def result_table(table):
    """results/<tier>/<version>/<table>.csv: a new version each invocation, never overwritten."""
    return f"results/{TIER}/{VERSION}/{table}.csv"


def gpus(section):
    """GPUs a rule of a stage asks for (0 on the CPU tiers), for cluster profiles to schedule."""
    return int(config.get(section, {}).get("gpus", 0))


def cli(values):
    """A dict of options -> a shell-quoted '--key value' string for an entry point."""
    from shlex import quote
    from repro.cli import to_argv

    return " ".join(quote(a) for a in to_argv(values))
