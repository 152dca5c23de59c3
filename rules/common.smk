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
# One results/reports version per invocation. The main process names it and records it; cluster
# jobs (which re-read this file in their own process) read the same name back.
_VERSION_FILE = os.path.join(".snakemake", f"repro_version_{TIER}")
if config.get("version"):
    VERSION = config["version"]
elif workflow.is_main_process:
    VERSION = make_version()
    os.makedirs(".snakemake", exist_ok=True)
    with open(_VERSION_FILE, "w") as _f:
        _f.write(VERSION)
else:
    with open(_VERSION_FILE) as _f:
        VERSION = _f.read().strip()


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


def table_target(name):
    """The aggregate target of one paper: its table when the stage has runs, else nothing."""
    return [result_table(name)] if name in TABLES else []


# Seeds per process. Starting a process that imports torch + transformers + TRL costs ~7 s on the tiny tier's CPU,
# against 10-50 s of work per run; with `group_seeds: true` one job runs all seeds of a (model, method) in one
# process (python -m repro.multirun MODULE ARGS -- ARGS ...), each run seeded and built on its own. Cluster tiers
# keep one job per seed, so seeds run side by side.
GROUP_SEEDS = bool(config.get("group_seeds", False))


def seed_outputs(seeds, *parts):
    """A per-seed rule's output from path parts with one "seed{seed}" part: that pattern, or with group_seeds every
    seed's path (then the job has no seed wildcard and runs every seed of ``seeds``)."""
    if not GROUP_SEEDS:
        return work(*parts)
    return [work(*(p.replace("{seed}", str(s)) if p == "seed{seed}" else p for p in parts)) for s in seeds]


def seed_log(*parts):
    """The log of a per-seed rule: one per seed, or one per group ("seeds") with group_seeds."""
    return log_path(*(("seeds" if GROUP_SEEDS else p) if "{seed}" in p else p for p in parts))


def job_seeds(wc, seeds):
    """The seeds a job runs: its seed wildcard, or with group_seeds all of ``seeds``."""
    return [int(wc.seed)] if "seed" in wc.keys() else [int(s) for s in seeds]


def seed_runs(launcher, flag_sets):
    """The shell command of a job's runs: the launcher and one flag set, or repro.multirun over several."""
    if len(flag_sets) == 1:
        return f"{launcher} {flag_sets[0]}"
    prog, _, module = launcher.rpartition("-m ")
    return f"{prog}-m repro.multirun {module} " + " -- ".join(flag_sets)
