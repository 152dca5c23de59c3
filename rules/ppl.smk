# Stage: PPL vs CPL / SFT / P-IQL on the MetaWorld datasets (issue 8); table `ppl`.
# One run per task x dataset kind x method x seed:
#   work/<tier>/ppl/<task>/<kind>/<method>/seed<seed>/{metrics.json, train_log.jsonl, eval_episodes.jsonl, checkpoint.pt}
# A run killed mid-way resumes from its checkpoint.pt when the rule runs again.
# Rows: paper=ppl, dataset=<task>/<kind>, metric success (per eval step; step -1 = final) and success_best.

PPL = config["ppl"]


PPL_RUNS = [work("ppl", t, k, m, f"seed{s}", "metrics.json")
            for t in PPL["tasks"] for k in PPL["kinds"] for m in PPL["methods"] for s in PPL["seeds"]]


rule ppl_train:
    """Train one method on one dataset with periodic 25-episode evaluations."""
    input:
        dataset=work("metaworld", "{task}", "{kind}.hdf5"),
        prefs=work("metaworld", "{task}", "{kind}.prefs.hdf5"),
    output:
        work("ppl", "{task}", "{kind}", "{method}", "seed{seed}", "metrics.json"),
    log:
        log_path("ppl", "{task}", "{kind}", "{method}_seed{seed}"),
    wildcard_constraints:
        task="[a-z-]+",
        kind="homogeneous|heterogeneous",
        method="sft|cpl|piql|ppl",
        seed=r"\d+",
    params:
        out=lambda wc: work("ppl", wc.task, wc.kind, wc.method, f"seed{wc.seed}"),
        options=lambda wc: cli({**PPL["train"], **PPL.get("method_overrides", {}).get(wc.method, {}),
                                "threads": config["threads"]}),
    threads: config["threads"]
    resources:
        gpu=0,
    conda:
        "../envs/metaworld.yaml"
    shell:
        "python -m methods.ppl.train --method {wildcards.method} --seed {wildcards.seed}"
        " --dataset {input.dataset} --prefs {input.prefs} --out {params.out} {params.options} > {log} 2>&1"
