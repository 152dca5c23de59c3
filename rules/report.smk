# Stage: the generated report (issue 9). Reads the newest version of every result table
# (results/<tier>/latest/*.csv) and writes reports/<tier>/<VERSION>/{report.md,report.html,figures/},
# repointing reports/<tier>/latest. REPORT_INPUTS (the table files of this invocation) comes from
# the Snakefile, TIER / VERSION / log_path / cli from rules/common.smk.
# `snakemake --report report.html` picks up the outputs through report() with these captions.

REPORT_DIR = f"reports/{TIER}/{VERSION}"
_REPORT_CAPTIONS = "../repro/report/templates/captions"
_REPORT_KEYS = ("bootstrap_reps", "confidence", "bootstrap_seed", "early_fit_fraction", "dpi")


rule report:
    """Report of the tier: ours vs the papers, seed statistics, figures, provenance."""
    input:
        REPORT_INPUTS,
    output:
        md=report(f"{REPORT_DIR}/report.md", caption=f"{_REPORT_CAPTIONS}/report.rst", category="Report"),
        html=report(f"{REPORT_DIR}/report.html", caption=f"{_REPORT_CAPTIONS}/report_html.rst", category="Report"),
        figures=report(directory(f"{REPORT_DIR}/figures"), patterns=["{name}.png"],
                       caption=f"{_REPORT_CAPTIONS}/figures.rst", category="Figures"),
    log:
        log_path("report", "report"),
    params:
        tier=TIER,
        out=lambda wc, output: os.path.dirname(output.md),
        options=lambda wc: cli({**{k: v for k, v in config.get("report", {}).items() if k in _REPORT_KEYS},
                                "wall_times": config.get("report", {}).get("wall_times") or "",
                                "config_file": ",".join(map(str, workflow.overwrite_configfiles))
                                or "config/config.yaml"}),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "python -m repro.report.build --tier {params.tier} --results results/{params.tier}/latest"
        " --out {params.out} {params.options} > {log} 2>&1"


REPORT_OUTPUTS = [f"{REPORT_DIR}/report.md"]
