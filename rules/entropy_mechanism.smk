# Entropy Mechanism (issue 5): GRPO, clip-higher, Clip-Cov and KL-Cov from the same starting model, with the
# same budget, on config["entropy_mechanism"]["train_data"]; then the law R = -a exp(H) + b on the GRPO runs.
# Runs per model in config["entropy_mechanism"]["models"]:
#   <method>/seed<s>   python -m methods.engine.train_rl (TRL GRPOTrainer, policy loss from the registry):
#                      train_log.jsonl (per step: entropy, cov, fraction selected/clipped, |log-ratio|,
#                      reward, length, val acc) + metrics.json (curves, entropy_initial/final, final eval)
#   law/<method>       python -m methods.entropy_mechanism.fit_law over that method's seeds
from methods.entropy_mechanism import experiments as entmech_plan

ENTMECH = config["entropy_mechanism"]


def entmech_model(name):
    """The starting model of ``name``: the workflow's nano model, or a hub id / path."""
    src = ENTMECH["models"][name]
    return work("nano", "model") if src == "nano" else src


def entmech_data_dir():
    return ENTMECH.get("data_dir") or work("data", "arith")


def entmech_local_inputs(wc):
    """Files the workflow must build first (the nano model and the arith data); none for hub models/data."""
    deps = []
    if ENTMECH["models"][wc.model] == "nano":
        deps.append(work("nano", "model", "model.safetensors"))  # NANO_MODEL: the weights file
    if not ENTMECH.get("data_dir"):
        deps.append(work("data", "arith", f"{ENTMECH['val_split']}.jsonl"))
    return deps


def entmech_train_args(method, model, seed):
    return entmech_plan.train_rl_args(ENTMECH, method, model, entmech_model(model), seed, entmech_data_dir(),
                                 work("entropy_mechanism", model, method, f"seed{seed}"), config["threads"])


rule entmech_train:
    """One (model, method, seed) RL run with the method's policy loss and the verifiable reward (with group_seeds:
    every seed of the (model, method), one process)."""
    priority: 10
    input:
        entmech_local_inputs,
    output:
        metrics=seed_outputs(ENTMECH["seeds"], "entropy_mechanism", "{model}", "{method}", "seed{seed}", "metrics.json"),
        log=seed_outputs(ENTMECH["seeds"], "entropy_mechanism", "{model}", "{method}", "seed{seed}", "train_log.jsonl"),
    wildcard_constraints:
        model="[^/]+",
        method="|".join(ENTMECH["methods"]),
        seed="[0-9]+",
    log:
        seed_log("entropy_mechanism", "{model}", "{method}", "seed{seed}"),
    params:
        cmd=lambda wc: seed_runs(entmech_plan.launcher(ENTMECH),
                                 [cli(entmech_train_args(wc.method, wc.model, s)) for s in job_seeds(wc, ENTMECH["seeds"])]),
    threads: config["threads"]
    resources:
        gpu=lambda wc: gpus("entropy_mechanism"),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "{params.cmd} > {log} 2>&1"


rule entmech_law:
    """Fit R = -a exp(H) + b on one method's runs (all seeds pooled) + the early-fit extrapolation per seed."""
    priority: 10
    input:
        lambda wc: [work("entropy_mechanism", wc.model, wc.method, f"seed{s}", "train_log.jsonl")
                    for s in ENTMECH["seeds"]],
    output:
        work("entropy_mechanism", "{model}", "law", "{method}", "metrics.json"),
    wildcard_constraints:
        model="[^/]+",
        method="|".join(ENTMECH["methods"]),
    log:
        log_path("entropy_mechanism", "{model}", "law_{method}"),
    params:
        args=lambda wc: cli(dict(
            runs=[work("entropy_mechanism", wc.model, wc.method, f"seed{s}") for s in ENTMECH["seeds"]],
            seeds=ENTMECH["seeds"], method=wc.method, model_name=wc.model, dataset=ENTMECH["val_split"],
            early_fit_fraction=ENTMECH["law"].get("early_fit_fraction", 0.15),
            steps_per_rollout=entmech_plan.steps_per_rollout(ENTMECH, wc.model),
            out=work("entropy_mechanism", wc.model, "law", wc.method))),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "python -m methods.entropy_mechanism.fit_law {params.args} > {log} 2>&1"


rule entmech_bench:
    """Step time of each loss vs grpo_loss (nano-sized model) and the losses alone (not part of the table)."""
    priority: 10
    output:
        work("perf", "entropy_mechanism", "bench.json"),
    log:
        log_path("perf", "entropy_mechanism_bench"),
    params:
        args=lambda wc: cli(dict(**ENTMECH.get("bench", {}), out=work("perf", "entropy_mechanism"))),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "python -m benchmarks.perf.loss_bench {params.args} > {log} 2>&1"


ENTROPY_MECHANISM_RUNS = (
    [f"{d}/metrics.json" for _m, _meth, _s, d in entmech_plan.run_dirs(ENTMECH, work)]
    + [work("entropy_mechanism", m, "law", meth, "metrics.json")
       for m in ENTMECH["models"] for meth in entmech_plan.law_methods(ENTMECH)]
)
