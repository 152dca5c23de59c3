# EMPO (issue 6): semantic-entropy reward without labels vs GRPO with gold answers vs the base model.
# Runs per model in config["empo"]["models"]:
#   base                     evaluation of the starting model
#   grpo/seed<s>             GRPO, verifiable reward on grpo_train_data (gold), same budget; model saved
#   empo/seed<s>             EMPO on train_data (answers never used), default thresholds
#   empo_dh<v>/seed<s>       EMPO with delta_high = v (sweep)
# + curves/ (semantic entropy, fraction filtered) for every EMPO run. All through
# `python -m methods.engine.train_rl` (TRL GRPOTrainer); EMPO only swaps the reward.

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
        deps.append(work("nano", "model", "model.safetensors"))  # NANO_MODEL of rules/nano.smk
    if not EMPO.get("data_dir"):
        deps.append(work("data", "arith", "arith_test.jsonl"))
    return deps


from methods.empo.experiments import empo_methods, launcher as _empo_launcher, shared_grpo as _shared_grpo
from methods.empo.experiments import seeds_for as empo_seeds, train_rl_args as _empo_args

EMPO_METHODS = empo_methods(EMPO)
# EMPO's GRPO baseline reuses the entropy-mechanism stage's identical GRPO runs when the config says so
_empo_shared_grpo = any(_shared_grpo(EMPO, config["entropy_mechanism"], m, empo_model(m), empo_data_dir())
                        for m in EMPO["models"])


def empo_train_args(method, model, seed):
    """train_rl flags of one run (the shared budget + the method's reward)."""
    return _empo_args(EMPO, method, model, empo_model(model), seed, empo_data_dir(),
                      work("empo", model, method, f"seed{seed}"), threads=config["threads"])


def empo_seeds_of(method):
    return empo_seeds(EMPO, method)


rule empo_base_eval:
    """Evaluate the untrained starting model (method base)."""
    priority: 10
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
            template=EMPO["template"], limit=EMPO.get("eval_limit"), max_new_tokens=EMPO.get("eval_max_new_tokens"),
            out=work("empo", wc.model, "base"), paper="empo", method="base", model_name=wc.model,
            seed=config["seed"], step=-1, batch_size=64, threads=config["threads"])),
    resources:
        gpu=lambda wc: min(1, gpus("empo")),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "python -m benchmarks.math.evaluate {params.args} > {log} 2>&1"


if _empo_shared_grpo:

    rule empo_grpo:
        """GRPO with gold rewards = the entropy-mechanism stage's GRPO run of the same budget (checked flag by
        flag in methods/empo/experiments.py), relabelled paper=empo, with its saved model."""
        priority: 10
        input:
            work("entropy_mechanism", "{model}", "grpo", "seed{seed}", "metrics.json"),
        output:
            metrics=work("empo", "{model}", "grpo", "seed{seed}", "metrics.json"),
            model=directory(work("empo", "{model}", "grpo", "seed{seed}", "model")),
        wildcard_constraints:
            seed=r"\d+",
            model="[^/]+",
        log:
            log_path("empo", "{model}", "grpo", "seed{seed}"),
        params:
            src=lambda wc, input: os.path.dirname(input[0]),
            dst=lambda wc, output: os.path.dirname(output.metrics),
        conda:
            "../envs/llm-cpu.yaml"
        shell:
            "python -m methods.empo.share_grpo --src {params.src} --dst {params.dst} > {log} 2>&1"

else:

    rule empo_grpo:
        """GRPO with gold rewards, the same budget as EMPO; the model is kept for one_shot_em's order/skewness."""
        priority: 10
        input:
            empo_local_inputs,
        output:
            metrics=work("empo", "{model}", "grpo", "seed{seed}", "metrics.json"),
            model=directory(work("empo", "{model}", "grpo", "seed{seed}", "model")),
        wildcard_constraints:
            seed=r"\d+",
            model="[^/]+",
        log:
            log_path("empo", "{model}", "grpo", "seed{seed}"),
        params:
            args=lambda wc: cli(empo_train_args("grpo", wc.model, int(wc.seed))),
            launcher=_empo_launcher(EMPO),
        resources:
            gpu=lambda wc: gpus("empo"),
        conda:
            "../envs/llm-cpu.yaml"
        shell:
            "{params.launcher} {params.args} > {log} 2>&1"


# With group_seeds, EMPO's main runs (every seed of empo.seeds) share one process (empo_train_seeds); the
# delta_high sweep keeps one job per seed.
_EMPO_GROUPED = ["empo"] if GROUP_SEEDS and len(EMPO["seeds"]) > 1 else []


def empo_train_cmd(wc, seeds):
    return seed_runs(_empo_launcher(EMPO), [cli(empo_train_args(wc.method, wc.model, s)) for s in seeds])


rule empo_train:
    """EMPO (semantic-entropy reward, no labels) and its delta_high sweep: one seed."""
    priority: 10
    input:
        empo_local_inputs,
    output:
        work("empo", "{model}", "{method}", "seed{seed}", "metrics.json"),
        work("empo", "{model}", "{method}", "seed{seed}", "train_log.jsonl"),
    log:
        log_path("empo", "{model}", "{method}", "seed{seed}"),
    wildcard_constraints:
        seed=r"\d+",
        model="[^/]+",
        method="empo_dh[0-9.e+-]+" if _EMPO_GROUPED else "empo(_dh[0-9.e+-]+)?",
    params:
        cmd=lambda wc: empo_train_cmd(wc, [int(wc.seed)]),
    resources:
        gpu=lambda wc: gpus("empo"),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "{params.cmd} > {log} 2>&1"


if _EMPO_GROUPED:

    rule empo_train_seeds:
        """EMPO's main runs, every seed of empo.seeds in one process (group_seeds)."""
        priority: 10
        input:
            empo_local_inputs,
        output:
            [work("empo", "{model}", "{method}", f"seed{s}", f) for s in EMPO["seeds"]
             for f in ("metrics.json", "train_log.jsonl")],
        log:
            log_path("empo", "{model}", "{method}", "seeds"),
        wildcard_constraints:
            model="[^/]+",
            method="empo",
        params:
            cmd=lambda wc: empo_train_cmd(wc, EMPO["seeds"]),
        resources:
            gpu=lambda wc: gpus("empo"),
        conda:
            "../envs/llm-cpu.yaml"
        shell:
            "{params.cmd} > {log} 2>&1"


rule empo_curves:
    """Semantic entropy and fraction of filtered prompts per step, as result rows."""
    priority: 10
    input:
        work("empo", "{model}", "{method}", "seed{seed}", "train_log.jsonl"),
    output:
        work("empo", "{model}", "{method}", "seed{seed}", "curves", "metrics.json"),
    log:
        log_path("empo", "{model}", "{method}", "seed{seed}_curves"),
    wildcard_constraints:
        seed=r"\d+",
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
    priority: 10
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
    + [work("empo", m, "grpo", f"seed{s}", "metrics.json") for m in EMPO["models"] for s in empo_seeds_of("grpo")]
    + [work("empo", m, meth, f"seed{s}", name)
       for m in EMPO["models"] for meth in EMPO_METHODS for s in empo_seeds_of(meth)
       for name in ("metrics.json", "curves/metrics.json")]
)
