# Entropy Mechanism (issue 5): GRPO, clip-higher, Clip-Cov and KL-Cov from the same starting model, with the
# same budget, on config["entropy_mechanism"]["train_data"]; then the law R = -a exp(H) + b on the GRPO runs.
# Runs per model in config["entropy_mechanism"]["models"]:
#   <method>/seed<s>   python -m methods.engine.train_rl (TRL GRPOTrainer, policy loss from the registry):
#                      train_log.jsonl (per step: entropy, cov, fraction selected/clipped, |log-ratio|,
#                      reward, length, val acc) + metrics.json (curves, entropy_initial/final, final eval)
#   law/<method>       python -m methods.entropy_mechanism.fit_law over that method's seeds
from methods.entropy_mechanism import experiments as em_plan

EM = config["entropy_mechanism"]


def em_model(name):
    """The starting model of ``name``: the workflow's nano model, or a hub id / path."""
    src = EM["models"][name]
    return work("nano", "model") if src == "nano" else src


def em_data_dir():
    return EM.get("data_dir") or work("data", "arith")


def em_local_inputs(wc):
    """Files the workflow must build first (the nano model and the arith data); none for hub models/data."""
    deps = []
    if EM["models"][wc.model] == "nano":
        deps.append(work("nano", "model"))
    if not EM.get("data_dir"):
        deps.append(work("data", "arith", f"{EM['val_split']}.jsonl"))
    return deps


def em_train_args(method, model, seed):
    return em_plan.train_rl_args(EM, method, model, em_model(model), seed, em_data_dir(),
                                 work("entropy_mechanism", model, method, f"seed{seed}"), config["threads"])


rule em_train:
    """One (model, method, seed) RL run with the method's policy loss and the verifiable reward."""
    input:
        em_local_inputs,
    output:
        metrics=work("entropy_mechanism", "{model}", "{method}", "seed{seed}", "metrics.json"),
        log=work("entropy_mechanism", "{model}", "{method}", "seed{seed}", "train_log.jsonl"),
    wildcard_constraints:
        model="[^/]+",
        method="|".join(EM["methods"]),
        seed="[0-9]+",
    log:
        log_path("entropy_mechanism", "{model}", "{method}", "seed{seed}"),
    params:
        args=lambda wc: cli(em_train_args(wc.method, wc.model, int(wc.seed))),
        launcher=em_plan.launcher(EM),
    threads: config["threads"]
    resources:
        gpu=lambda wc: gpus("entropy_mechanism"),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "{params.launcher} {params.args} > {log} 2>&1"


rule em_law:
    """Fit R = -a exp(H) + b on one method's runs (all seeds pooled) + the early-fit extrapolation per seed."""
    input:
        lambda wc: [work("entropy_mechanism", wc.model, wc.method, f"seed{s}", "train_log.jsonl")
                    for s in EM["seeds"]],
    output:
        work("entropy_mechanism", "{model}", "law", "{method}", "metrics.json"),
    wildcard_constraints:
        model="[^/]+",
        method="|".join(EM["methods"]),
    log:
        log_path("entropy_mechanism", "{model}", "law_{method}"),
    params:
        args=lambda wc: cli(dict(
            runs=[work("entropy_mechanism", wc.model, wc.method, f"seed{s}") for s in EM["seeds"]],
            seeds=EM["seeds"], method=wc.method, model_name=wc.model, dataset=EM["val_split"],
            early_fit_fraction=EM["law"].get("early_fit_fraction", 0.15),
            out=work("entropy_mechanism", wc.model, "law", wc.method))),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "python -m methods.entropy_mechanism.fit_law {params.args} > {log} 2>&1"


rule em_bench:
    """Step time of each loss vs grpo_loss (nano-sized model) and the losses alone (not part of the table)."""
    output:
        work("perf", "entropy_mechanism", "bench.json"),
    log:
        log_path("perf", "entropy_mechanism_bench"),
    params:
        args=lambda wc: cli(dict(**EM.get("bench", {}), out=work("perf", "entropy_mechanism"))),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "python -m benchmarks.perf.loss_bench {params.args} > {log} 2>&1"


ENTROPY_MECHANISM_RUNS = (
    [f"{d}/metrics.json" for _m, _meth, _s, d in em_plan.run_dirs(EM, work)]
    + [work("entropy_mechanism", m, "law", meth, "metrics.json")
       for m in EM["models"] for meth in em_plan.law_methods(EM)]
)
