# Stage: MetaWorld offline datasets for PPL (issue 8). Per task: calibrate the behaviour policies,
# fit the oracle critic, collect the homogeneous / heterogeneous datasets, label preferences.
# Config: the `ppl` section (calibrate, collect, oracle, preferences).
#
#   work/<tier>/metaworld/<task>/calibration.json       w per target success rate + measured rates
#   work/<tier>/metaworld/<task>/oracle.pt              V* for the regret teacher
#   work/<tier>/metaworld/<task>/<kind>.hdf5            D4RL-style dataset with policy labels
#   work/<tier>/metaworld/<task>/<kind>.prefs.hdf5      labelled segment pairs

PPL = config["ppl"]


MW_WILDCARDS = {"task": "[a-z-]+", "kind": "homogeneous|heterogeneous"}


rule metaworld_calibrate:
    """Distractor weight per target success rate (coarse scan + regula falsi on a common-random-number pool; misses are WARNINGs in the JSON)."""
    output:
        work("metaworld", "{task}", "calibration.json"),
    log:
        log_path("metaworld", "{task}", "calibrate"),
    wildcard_constraints:
        **MW_WILDCARDS,
    params:
        options=cli({**PPL["calibrate"], "workers": PPL["workers"]}),
    threads: PPL["workers"]
    conda:
        "../envs/metaworld.yaml"
    shell:
        "python -m benchmarks.metaworld.calibrate --task {wildcards.task} --out {output} {params.options} > {log} 2>&1"


rule metaworld_oracle:
    """Oracle critic V* fitted on noisy-expert Monte-Carlo returns (regret teacher)."""
    output:
        work("metaworld", "{task}", "oracle.pt"),
    log:
        log_path("metaworld", "{task}", "oracle"),
    wildcard_constraints:
        **MW_WILDCARDS,
    params:
        options=cli({**PPL["oracle"], "sigma": PPL["calibrate"]["sigma"], "workers": PPL["workers"],
                     "threads": config["threads"]}),
    threads: PPL["workers"]
    conda:
        "../envs/metaworld.yaml"
    shell:
        "python -m benchmarks.metaworld.oracle --task {wildcards.task} --out {output} {params.options} > {log} 2>&1"


rule metaworld_collect:
    """One offline dataset (homogeneous: the ~50% policy; heterogeneous: ~20% + ~50% policies)."""
    input:
        calibration=work("metaworld", "{task}", "calibration.json"),
    output:
        work("metaworld", "{task}", "{kind}.hdf5"),
    log:
        log_path("metaworld", "{task}", "collect_{kind}"),
    wildcard_constraints:
        **MW_WILDCARDS,
    params:
        options=cli({**PPL["collect"], "sigma": PPL["calibrate"]["sigma"], "workers": PPL["workers"]}),
    threads: PPL["workers"]
    conda:
        "../envs/metaworld.yaml"
    shell:
        "python -m benchmarks.metaworld.collect --task {wildcards.task} --kind {wildcards.kind}"
        " --calibration {input.calibration} --out {output} {params.options} > {log} 2>&1"


rule metaworld_preferences:
    """Scripted-teacher labels on segment pairs of one dataset."""
    input:
        dataset=work("metaworld", "{task}", "{kind}.hdf5"),
        oracle=work("metaworld", "{task}", "oracle.pt"),
    output:
        work("metaworld", "{task}", "{kind}.prefs.hdf5"),
    log:
        log_path("metaworld", "{task}", "preferences_{kind}"),
    wildcard_constraints:
        **MW_WILDCARDS,
    params:
        options=cli(PPL["preferences"]),
    conda:
        "../envs/metaworld.yaml"
    shell:
        "python -m benchmarks.metaworld.preferences --dataset {input.dataset} --oracle {input.oracle}"
        " --out {output} {params.options} > {log} 2>&1"
