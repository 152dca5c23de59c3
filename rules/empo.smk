# EMPO (issue 6): semantic-entropy reward without labels vs GRPO with gold answers vs the base model.
# Runs per model in config["empo"]["models"]:
#   base                     evaluation of the starting model
#   grpo/seed<s>             GRPO, verifiable reward on grpo_train_data (gold), same budget; model saved
#   empo/seed<s>             EMPO on train_data (answers never used), default thresholds
#   empo_dh<v>/seed<s>       EMPO with delta_high = v (sweep)
# + curves/ (semantic entropy, fraction filtered) for every EMPO run. All through
# `python -m methods.engine.train_rl` (TRL GRPOTrainer); EMPO only swaps the reward.
import json as _json

EMPO = config["empo"]


def empo_model(name):
    """The starting model of ``name``: the workflow's nano model, or a hub id / path."""
    src = EMPO["models"][name]
    return work("nano", "model") if src == "nano" else src


def empo_data_dir():
    return EMPO.get("data_dir") or work("data", "arith")


def empo_local_inputs(wc):
    """Files the workflow must build first (the nano model and arith data), none for hub models."""
    deps = []
    if EMPO["models"][wc.model] == "nano":
        deps.append(work("nano", "model"))
    if not EMPO.get("data_dir"):
        deps.append(work("data", "arith", "arith_test.jsonl"))
    return deps


def _fmt(v):
    return f"{v:g}"


EMPO_METHODS = ["empo"] + [f"empo_dh{_fmt(v)}" for v in EMPO.get("delta_high_sweep", [])]


def empo_seeds(method):
    return EMPO["seeds"] if method in ("empo", "grpo") else EMPO.get("sweep_seeds", [])


def empo_train_args(method, model, seed):
    """train_rl flags of one run (the shared budget + the method's reward)."""
    ddir = empo_data_dir()
    grpo = method == "grpo"
    dh = EMPO.get("delta_high")
    if method.startswith("empo_dh"):
        dh = float(method[len("empo_dh"):])
    args = dict(
        model=empo_model(model), template=EMPO["template"],
        train_data=f"{ddir}/{EMPO['grpo_train_data' if grpo else 'train_data']}.jsonl",
        train_limit=EMPO.get("train_limit"),
        policy_loss="grpo", importance_sampling_level=EMPO["importance_sampling_level"],
        reward="verifiable" if grpo else "semantic_entropy",
        reward_kwargs="{}" if grpo else _json.dumps(dict(
            delta_low=EMPO.get("delta_low", 0.0), delta_high=dh,
            empty_reward_zero=EMPO.get("empty_reward_zero", False), workers=EMPO.get("reward_workers", 0))),
        num_generations=EMPO["num_generations"], prompts_per_step=EMPO["prompts_per_step"],
        ppo_minibatches=EMPO["ppo_minibatches"], micro_batch_size=EMPO["micro_batch_size"],
        rollout_steps=EMPO["rollout_steps"], learning_rate=EMPO["learning_rate"],
        temperature=EMPO["temperature"], top_p=EMPO["top_p"],
        max_completion_length=EMPO["max_completion_length"],
        val_data=f"{ddir}/{EMPO['eval_datasets'][0]}.jsonl", val_limit=EMPO["val_limit"],
        val_every=EMPO["val_every"], eval_datasets=EMPO["eval_datasets"], eval_data_dir=ddir,
        eval_protocol=EMPO["eval_protocol"], eval_limit=EMPO.get("eval_limit"),
        use_vllm=EMPO["use_vllm"], bf16=EMPO["bf16"], save_model=grpo,
        paper="empo", method=method, model_name=model, seed=seed, threads=config["threads"],
        out=work("empo", model, method, f"seed{seed}"),
    )
    for key in ("eps_low", "eps_high"):
        if EMPO.get(key) is not None:
            args[key] = EMPO[key]
    return args


rule empo_base_eval:
    """Evaluate the untrained starting model (method base)."""
    input:
        empo_local_inputs,
    output:
        work("empo", "{model}", "base", "metrics.json"),
    wildcard_constraints:
        model="[^/]+",
    log:
        log_path("empo", "{model}", "base"),
    params:
        args=lambda wc: cli(dict(
            model=empo_model(wc.model), datasets=EMPO["eval_datasets"], data_dir=empo_data_dir(),
            protocol=EMPO["eval_protocol"], backend="vllm" if EMPO["use_vllm"] else "hf",
            template=EMPO["template"], limit=EMPO.get("eval_limit"),
            out=work("empo", wc.model, "base"), paper="empo", method="base", model_name=wc.model,
            seed=config["seed"], step=-1, batch_size=64, threads=config["threads"])),
    resources:
        gpu=lambda wc: min(1, gpus("empo")),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "python -m benchmarks.math.evaluate {params.args} > {log} 2>&1"


rule empo_grpo:
    """GRPO with gold rewards, the same budget as EMPO; the model is kept for one_shot_em's order/skewness."""
    input:
        empo_local_inputs,
    output:
        metrics=work("empo", "{model}", "grpo", "seed{seed}", "metrics.json"),
        model=directory(work("empo", "{model}", "grpo", "seed{seed}", "model")),
    wildcard_constraints:
        model="[^/]+",
    log:
        log_path("empo", "{model}", "grpo", "seed{seed}"),
    params:
        args=lambda wc: cli(empo_train_args("grpo", wc.model, int(wc.seed))),
    resources:
        gpu=lambda wc: gpus("empo"),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "python -m methods.engine.train_rl {params.args} > {log} 2>&1"


rule empo_train:
    """EMPO (semantic-entropy reward, no labels) and its delta_high sweep."""
    input:
        empo_local_inputs,
    output:
        work("empo", "{model}", "{method}", "seed{seed}", "metrics.json"),
        work("empo", "{model}", "{method}", "seed{seed}", "train_log.jsonl"),
    log:
        log_path("empo", "{model}", "{method}", "seed{seed}"),
    wildcard_constraints:
        model="[^/]+",
        method="empo(_dh[0-9.e+-]+)?",
    params:
        args=lambda wc: cli(empo_train_args(wc.method, wc.model, int(wc.seed))),
    resources:
        gpu=lambda wc: gpus("empo"),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "python -m methods.engine.train_rl {params.args} > {log} 2>&1"


rule empo_curves:
    """Semantic entropy and fraction of filtered prompts per step, as result rows."""
    input:
        work("empo", "{model}", "{method}", "seed{seed}", "train_log.jsonl"),
    output:
        work("empo", "{model}", "{method}", "seed{seed}", "curves", "metrics.json"),
    log:
        log_path("empo", "{model}", "{method}", "seed{seed}_curves"),
    wildcard_constraints:
        model="[^/]+",
        method="empo(_dh[0-9.e+-]+)?",
    params:
        args=lambda wc: cli(dict(run_dir=work("empo", wc.model, wc.method, f"seed{wc.seed}"), method=wc.method,
                                 model_name=wc.model, dataset=EMPO["train_data"], seed=int(wc.seed))),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "python -m methods.empo.curves {params.args} > {log} 2>&1"


rule empo_bench:
    """Reward computation time, serial vs pool (not part of the table)."""
    output:
        work("perf", "empo", "bench.json"),
    log:
        log_path("perf", "empo_bench"),
    params:
        args=lambda wc: cli(dict(**EMPO.get("bench", {}), out=work("perf", "empo"))),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "python -m benchmarks.perf.empo_bench {params.args} > {log} 2>&1"


EMPO_RUNS = (
    [work("empo", m, "base", "metrics.json") for m in EMPO["models"]]
    + [work("empo", m, "grpo", f"seed{s}", "metrics.json") for m in EMPO["models"] for s in empo_seeds("grpo")]
    + [work("empo", m, meth, f"seed{s}", name)
       for m in EMPO["models"] for meth in EMPO_METHODS for s in empo_seeds(meth)
       for name in ("metrics.json", "curves/metrics.json")]
)
