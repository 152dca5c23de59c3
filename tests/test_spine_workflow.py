"""The workflow end to end: dry-runs of every tier, lint, and a real ci-tier reproduction."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _env():
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # rules call `python -m ...`
    env.pop("REPRO_VERSION", None)
    return env


def _snakemake(cwd, *args, timeout=1500):
    return subprocess.run([str(BIN / "snakemake"), *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def _copy_checkout(repo_root: Path, dest: Path) -> Path:
    """Copy tracked + untracked-but-not-ignored files (what a clone plus local edits would hold)."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                           cwd=repo_root, capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        src = repo_root / rel
        if not src.is_file() or rel.startswith(("results/", "reports/")):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/ci.yaml", "config/paper.yaml"])
def test_dry_run_resolves_for_every_tier(repo_root, configfile):
    proc = _snakemake(repo_root, "reproduce_all", "-n", "--configfile", configfile)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _job_counts(stdout: str) -> dict[str, int]:
    """The dry run's "Job stats" table -> {rule: jobs}."""
    lines = stdout.split("Job stats:")[1].splitlines()[3:]
    counts = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_seeds_share_a_process_only_when_group_seeds_says_so(repo_root, tmp_path):
    """group_seeds (tiny): one job per (model, method) runs all seeds; false (paper-style): one job per seed.
    PPL runs a dataset and seed's BC start and methods in one job either way. --forceall plans every job even
    where a local `make reproduce` has already made the outputs (the counts are those of a fresh clone)."""
    grouped = _snakemake(repo_root, "reproduce_all", "-n", "--forceall", "--configfile", "config/config.yaml")
    (tmp_path / "single.yaml").write_text("group_seeds: false\n")
    single = _snakemake(repo_root, "reproduce_all", "-n", "--forceall", "--configfile", "config/config.yaml",
                        str(tmp_path / "single.yaml"))
    assert grouped.returncode == 0 and single.returncode == 0, (grouped.stderr + single.stderr)[-3000:]
    g, s = _job_counts(grouped.stdout), _job_counts(single.stdout)
    assert (g["entmech_train"], s["entmech_train"]) == (4, 12)  # 4 methods x 3 seeds
    assert g["empo_train_seeds"] == 1 and "empo_train_seeds" not in s and s["empo_train"] == g["empo_train"] + 3
    assert g["osem_train_seeds"] == 3 and s["osem_train"] == g["osem_train"] + 9
    assert (g["osem_skewness"], s["osem_skewness"]) == (4, 12)
    assert g["ppl_train"] == s["ppl_train"] == 18 and g["ppl_bc"] == 1  # 3 tasks x 2 kinds x 3 seeds; the sweep's BC


def test_misspelled_key_stops_the_workflow_naming_it(repo_root, tmp_path):
    bad = tmp_path / "bad.yaml"
    text = (repo_root / "config/ci.yaml").read_text().replace("threads:", "thread_count:", 1)
    bad.write_text(text)
    proc = _snakemake(repo_root, "reproduce_all", "-n", "--configfile", str(bad))
    assert proc.returncode != 0
    assert "unknown key thread_count" in proc.stdout + proc.stderr


# Lints we keep on purpose (README, "Workflow lint"): each stage's rules file keeps the few small
# helper functions that only its rules use next to those rules, instead of growing common.smk.
JUSTIFIED_LINTS = {"Mixed rules and functions in same snakefile."}


def test_lint_passes_or_only_justified_warnings_remain(repo_root):
    proc = _snakemake(repo_root, "--lint", "--configfile", "config/ci.yaml")
    out = proc.stdout + proc.stderr
    warnings = {line.strip()[2:].rstrip(":") for line in out.splitlines() if line.startswith("    * ")}
    unjustified = {w for w in warnings if w.rstrip(".:") + "." not in JUSTIFIED_LINTS}
    assert not unjustified, out[-4000:]


@pytest.mark.slow
def test_ci_reproduction_end_to_end(repo_root, tmp_path):
    work = _copy_checkout(repo_root, tmp_path / "checkout")
    proc = _snakemake(work, "reproduce_all", "--cores", "2", "--configfile", "config/ci.yaml")
    assert proc.returncode == 0, proc.stderr[-5000:]
    latest = work / "results" / "ci" / "latest"
    tables = sorted(latest.glob("*.csv"))
    assert tables, "no result table was produced"
    for table in tables:
        with open(table) as f:
            rows = list(csv.DictReader(f))
        assert rows, f"{table.name} is empty"
        for row in rows:
            assert row["commit"] and row["config_hash"] and row["hardware"] and row["finished"], table.name
    # A second reproduction reuses the runs but writes a new version of every table.
    first = {t.name: t.resolve() for t in tables}
    proc = _snakemake(work, "reproduce_all", "--cores", "2", "--configfile", "config/ci.yaml")
    assert proc.returncode == 0, proc.stderr[-5000:]
    for name, old in first.items():
        new = (latest / name).resolve()
        assert new != old and old.exists() and new.exists()


def _readme_commands(repo_root: Path) -> list[str]:
    """Command lines of the README's ```bash blocks (comments stripped)."""
    text = (repo_root / "README.md").read_text()
    cmds, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```bash" and not inside
            continue
        if inside and line.strip():
            cmds.append(line.split("  #")[0].strip())
    return cmds


def test_readme_commands_work_as_written(repo_root, tmp_path):
    """Every command in the README's code blocks, on the ci config: snakemake ones as dry runs (a real run of
    the first data rule, with the venv *off* PATH, proves rules use Snakemake's interpreter), make targets
    exist, python entry points run. A README that drifts fails here."""
    cmds = _readme_commands(repo_root)
    assert any(c.startswith("make reproduce") for c in cmds) and any(c.startswith("make test") for c in cmds)
    make_targets = subprocess.run(["make", "-pn"], cwd=repo_root, capture_output=True, text=True).stdout
    env_no_venv = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV",)}
    env_no_venv["PATH"] = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                                          if Path(p).resolve() != BIN.resolve())
    checked = 0
    for cmd in cmds:
        words = cmd.split()
        if words[0] == "make":
            assert f"\n{words[1]}:" in make_targets, f"README names `make {words[1]}`, the Makefile has no such target"
            checked += 1
        elif words[0] == ".venv/bin/snakemake":
            if "profiles/slurm" in cmd:
                import importlib.util

                if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
                    continue  # needs the optional `slurm` extra
            args = [w.replace("work/tiny/", "work/ci/") for w in words[1:]]
            args = [a for i, a in enumerate(args) if a != "--configfile" and (i == 0 or args[i - 1] != "--configfile")]
            proc = subprocess.run([str(BIN / "snakemake"), *args, "-n", "--configfile", "config/ci.yaml"],
                                  cwd=repo_root, env=env_no_venv, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, f"{cmd}\n{proc.stderr[-3000:]}"
            checked += 1
        elif words[0] == ".venv/bin/python" and "repro.config" in cmd:
            proc = subprocess.run([sys.executable, *words[1:-1], "config/ci.yaml"], cwd=repo_root,
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr[-2000:]
            checked += 1
    assert checked >= 6


@pytest.mark.slow
def test_nano_testbed_runs_without_the_venv_on_path(repo_root, tmp_path):
    """`.venv/bin/snakemake --cores all nano_testbed --configfile config/ci.yaml` with the venv off PATH (a system
    python without torch first): the rules must run with Snakemake's own interpreter."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                                  if Path(p).resolve() != BIN.resolve())
    work = _copy_checkout(repo_root, tmp_path / "checkout")
    proc = subprocess.run([str(BIN / "snakemake"), "--cores", "all", "nano_testbed", "--configfile", "config/ci.yaml"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / "work" / "ci" / "nano" / "model" / "model.safetensors").exists()


def test_gpu_smoke_skips_cleanly_without_cuda():
    import torch

    proc = subprocess.run([sys.executable, "-m", "repro.gpu_smoke"], capture_output=True, text=True, timeout=300)
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: `make gpu-smoke` runs for real")
    assert proc.returncode == 0 and "skipped -- no CUDA device" in proc.stdout


def test_paper_dag_declares_gpus_and_a_local_gpu_cap_applies(repo_root):
    """Issue 17: the paper tier's GPU jobs declare their GPUs (8 = one node), and a local run with N visible GPUs
    caps Snakemake's `gpu` resource at N -- Snakemake then scales the claims to N, so the jobs claiming GPUs never
    together exceed the machine (without the cap, an undeclared resource is unlimited and two 8-GPU jobs start
    at once)."""
    import re

    def claims(visible):
        env = {**_env(), "CUDA_VISIBLE_DEVICES": visible}
        proc = subprocess.run([str(BIN / "snakemake"), "reproduce_all", "-n", "--configfile", "config/paper.yaml",
                               "--cores", "64"], cwd=repo_root, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return [int(g) for g in re.findall(r"resources: [^\n]*gpu=(\d+)", proc.stdout)]

    uncapped = claims("")  # no GPU visible: nothing to cap, the declared claims show
    assert max(uncapped) == 8 and sum(g > 0 for g in uncapped) > 10
    assert max(claims("0,1,2,3,4,5,6,7")) == 8
    assert max(claims("0,1")) == 2  # capped at the 2 visible GPUs
