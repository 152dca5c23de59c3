# Reproduction suite for entropy- and preference-based RL — the table of contents.
#
#   snakemake --cores all reproduce_all                              # tiny tier (default config)
#   snakemake --cores all reproduce_all --configfile config/ci.yaml  # minutes, proves the DAG
#   snakemake --cores all entropy_mechanism                          # one paper
#   snakemake --profile profiles/slurm --configfile config/paper.yaml reproduce_all
#
# Each stage's rules file defines its runs and exposes their metrics.json files as <STAGE>_RUNS;
# this file turns them into versioned result tables and the per-paper / overall targets.

if not workflow.overwrite_configfiles:
    configfile: "config/config.yaml"

# Rules call `python -m ...`: run them with the interpreter that runs Snakemake (e.g. .venv/bin/snakemake
# works without activating the venv, even when the system python has no torch).
import sys as _sys

envvars:
    "PATH",


os.environ["PATH"] = os.path.dirname(_sys.executable) + os.pathsep + os.environ.get("PATH", "")


# GPU accounting (issue 17): a local run on a machine with GPUs caps the `gpu` resource at the GPUs it has
# unless `--resources gpu=N` says otherwise, so two 8-GPU jobs never start together (without a cap Snakemake
# treats an undeclared resource as unlimited). Cluster executors schedule GPUs per job; CPU machines need none.
def _local_gpus():
    import subprocess as _sp

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        out = _sp.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, _sp.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


if workflow.local_exec and "gpu" not in workflow.global_resources and _local_gpus() > 0:
    workflow.register_resource("gpu", _local_gpus())


include: "rules/common.smk"

STAGES = ["data", "nano", "math_eval", "entropy_mechanism", "empo", "one_shot_em", "metaworld", "ppl"]
for _stage in STAGES:
    if os.path.exists(os.path.join(workflow.basedir, "rules", f"{_stage}.smk")):
        include: f"rules/{_stage}.smk"

# Table name -> the runs it collects. A stage that has not landed has no runs and no table.
TABLE_RUNS = {
    "nano": globals().get("NANO_RUNS", []),
    "entropy_mechanism": globals().get("ENTROPY_MECHANISM_RUNS", []),
    "empo": globals().get("EMPO_RUNS", []),
    "one_shot_em": globals().get("ONE_SHOT_EM_RUNS", []),
    "ppl": globals().get("PPL_RUNS", []),
}
TABLES = [name for name, runs in TABLE_RUNS.items() if runs]
REPORT_INPUTS = [result_table(t) for t in TABLES]

if os.path.exists(os.path.join(workflow.basedir, "rules", "report.smk")):
    include: "rules/report.smk"
REPORT_OUTPUTS = globals().get("REPORT_OUTPUTS", [])


rule reproduce_all:
    input:
        REPORT_INPUTS,
        REPORT_OUTPUTS,


rule nano_testbed:
    input:
        table_target("nano"),


rule entropy_mechanism:
    input:
        table_target("entropy_mechanism"),


rule empo:
    input:
        table_target("empo"),


rule one_shot_em:
    input:
        table_target("one_shot_em"),


rule ppl:
    input:
        table_target("ppl"),


rule table:
    """Collect a stage's runs into results/<tier>/<version>/<table>.csv and repoint latest/."""
    input:
        lambda wc: TABLE_RUNS[wc.table],
    output:
        f"results/{TIER}/{VERSION}/{{table}}.csv",
    log:
        log_path("tables", "{table}"),
    wildcard_constraints:
        table="|".join(TABLE_RUNS),
    params:
        tier=TIER,
        version=VERSION,
    conda:
        "envs/llm-cpu.yaml"
    shell:
        "python -m repro.results collect --table {wildcards.table} --tier {params.tier}"
        " --version {params.version} {input:q} > {log} 2>&1"
