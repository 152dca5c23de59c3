# Entropy Mechanism (issue 5): GRPO, clip-higher, Clip-Cov and KL-Cov from the same starting model, with the
# same budget, on config["entropy_mechanism"]["train_data"]; then the law R = -a exp(H) + b on the GRPO runs.
# Runs per model in config["entropy_mechanism"]["models"]:
#   <method>/seed<s>   python -m methods.engine.train_rl (TRL GRPOTrainer, policy loss from the registry):
#                      train_log.jsonl (per step: entropy, cov, fraction selected/clipped, |log-ratio|,
#                      reward, length, val acc) + metrics.json (curves, entropy_initial/final, final eval)
#   law/<method>       python -m methods.entropy_mechanism.fit_law over that method's seeds
EM = config["entropy_mechanism"]
_EM_LOSS_KEYS = ("eps_low", "eps_high", "clip_ratio", "cov_lb", "cov_ub", "k_ratio", "kl_coef")


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
    """train_rl flags of one run: the shared budget, the model's overrides, the method's loss options."""
    ddir = em_data_dir()
    over = EM.get("model_overrides", {}).get(model, {})
    train = {**EM["train"], **over.get("train", {})}
    spec = {**EM["methods"][method], **over.get("methods", {}).get(method, {})}
    data = EM["train_data"]
    args = dict(
        model=em_model(model), template=EM["template"],
        train_data=data if data.startswith("hub:") else f"{ddir}/{data}.jsonl",
        train_limit=EM.get("train_limit"), policy_loss=spec["policy_loss"], reward="verifiable",
        **train,
        val_data=f"{ddir}/{EM['val_split']}.jsonl",
        eval_datasets=EM["eval"]["datasets"], eval_data_dir=ddir, eval_protocol=EM["eval"]["protocol"],
        eval_limit=EM["eval"].get("limit"),
        paper="entropy_mechanism", method=method, model_name=model, seed=seed, threads=config["threads"],
        out=work("entropy_mechanism", model, method, f"seed{seed}"),
    )
    for key in _EM_LOSS_KEYS:
        if spec.get(key) is not None:
            args[key] = spec[key]
    return args


def em_launcher():
    if EM.get("launcher", "python") == "accelerate":
        return (f"accelerate launch --config_file {EM['accelerate_config']} "
                f"--num_processes {EM.get('num_processes', 1)} -m methods.engine.train_rl")
    return "python -m methods.engine.train_rl"


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
        launcher=em_launcher(),
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
    [work("entropy_mechanism", m, meth, f"seed{s}", "metrics.json")
     for m in EM["models"] for meth in EM["methods"] for s in EM["seeds"]]
    + [work("entropy_mechanism", m, "law", meth, "metrics.json")
       for m in EM["models"] for meth in EM["law"]["methods"]]
)
