"""rules/report.smk runs under Snakemake on fixture tables and its outputs feed `snakemake --report`."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIX = Path(__file__).parent / "fixtures" / "report"

STUB = """
from shlex import quote
TIER = "tiny"
VERSION = "v-test"
config.setdefault("report", {{"bootstrap_reps": 200, "dpi": 50}})
def log_path(*parts):
    return "/".join(["work", TIER, "logs", *parts[:-1], parts[-1] + ".log"])
def cli(values):
    from repro.cli import to_argv
    return " ".join(quote(a) for a in to_argv(values))
REPORT_INPUTS = [f"results/{{TIER}}/latest/{{t}}.csv" for t in ("nano", "empo")]
include: "{rules}"
rule all:
    input: REPORT_OUTPUTS
"""


@pytest.mark.slow
def test_report_rule_and_snakemake_report(tmp_path):
    snakemake = Path(sys.executable).parent / "snakemake"
    if not snakemake.exists():
        pytest.skip("snakemake is not installed in this environment")
    latest = tmp_path / "results" / "tiny" / "latest"
    latest.mkdir(parents=True)
    for t in ("nano", "empo"):
        shutil.copy(FIX / f"{t}.csv", latest / f"{t}.csv")
    (tmp_path / "Snakefile").write_text(STUB.format(rules=ROOT / "rules" / "report.smk"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    run = subprocess.run([str(snakemake), "--cores", "1", "-q"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "reports" / "tiny" / "v-test"
    md = (out / "report.md").read_text()
    assert "## EMPO" in md and md.count("**not run**") == 3  # entropy_mechanism, one_shot_em, ppl
    assert (tmp_path / "reports" / "tiny" / "latest").readlink() == Path("v-test")
    assert any(out.joinpath("figures").glob("empo_*.png"))
    rep = subprocess.run([str(snakemake), "--report", "report.zip"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr[-3000:]
    names = zipfile.ZipFile(tmp_path / "report.zip").namelist()
    assert any(n.endswith("report.md") for n in names) and any(n.endswith("empo_vs_grpo.png") for n in names)
