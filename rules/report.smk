# Stage: the generated report (issue 9). Reads the newest version of every result table
# (results/<tier>/latest/*.csv) and writes reports/<tier>/<VERSION>/{report.md,report.html,figures/},
# repointing reports/<tier>/latest. REPORT_INPUTS (the table files of this invocation) comes from
# the Snakefile, TIER / VERSION / log_path / cli from rules/common.smk.
# `snakemake --report report.html` picks up the outputs through report() with these captions.

REPORT_DIR = f"reports/{TIER}/{VERSION}"
_REPORT_CAPTIONS = "../repro/report/templates/captions"


def _report_options():
    section = config.get("report", {})
    opts = {k: section[k] for k in ("bootstrap_reps", "confidence", "bootstrap_seed", "early_fit_fraction", "dpi")
            if k in section}
    opts["wall_times"] = section.get("wall_times") or ""
    opts["config_file"] = ",".join(map(str, workflow.overwrite_configfiles)) or "config/config.yaml"
    return cli(opts)


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
        out=REPORT_DIR,
        options=_report_options(),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "python -m repro.report.build --tier {params.tier} --results results/{params.tier}/latest"
        " --out {params.out} {params.options} > {log} 2>&1"


REPORT_OUTPUTS = [f"{REPORT_DIR}/report.md"]
