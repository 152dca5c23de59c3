# One-shot entropy minimisation (issue 7). Runs per model in config["one_shot_em"]["models"]:
#   selected.json             variance-based choice of the one prompt (skipped when `prompt` is fixed)
#   selected_control.json     the control prompt: the one the k selection samples answered right most often
#   one_shot_em/seed<s>       EM from the base model, evaluated at eval_steps (curves over `step`)
#   em_ts<T>/seed<s>          the same at another sampling temperature T_s
#   rl_then_em/seed<s>        EM (order.em_steps) starting from the empo stage's GRPO model
#   em_confident/seed<s>      the main run's settings on the control prompt (control.enabled; a diagnostic)
#   em_rank<r>/seed<s>        the main run's settings on the prompt ranked r by the selection (ranks.enabled;
#                             prompt sensitivity: ranks.steps steps, greedy evaluation at the end only)
#   em_then_rl/seed<s>        GRPO (the empo stage's budget) starting from EM's step-order.em_steps checkpoint
#   skew/<which>/seed<s>      logit skewness of base, one_shot_em, grpo, em_then_rl
# The RL phase of the ordering runs is the empo stage's GRPO-with-gold baseline (rules/empo.smk).

OSEM = config["one_shot_em"]
_ORDER = OSEM.get("order", {"enabled": False})
_SKEW = OSEM.get("skewness", {"enabled": False})


def osem_model(name):
    src = OSEM["models"][name]
    return work("nano", "model") if src == "nano" else src


def osem_data_dir():
    return OSEM.get("data_dir") or work("data", "arith")


def osem_local_inputs(wc):
    deps = []
    if OSEM["models"][wc.model] == "nano":
        deps.append(work("nano", "model", "model.safetensors"))  # NANO_MODEL of rules/nano.smk
    if not OSEM.get("data_dir"):
        deps.append(work("data", "arith", "arith_test.jsonl"))
    if OSEM.get("prompt") is None:
        deps.append(work("one_shot_em", wc.model, "selected.json"))
    return deps


from methods.one_shot_em.experiments import em_methods, em_train_args, launcher as _osem_launcher, order_steps, seeds_for as _osem_seeds
from methods.one_shot_em.experiments import rank_methods as _osem_rank_methods, select_args as _osem_select_args

_OSEM_RANKS = _osem_rank_methods(OSEM)  # em_rank<r> -> r


def osem_methods():
    """EM run names -> sampling temperature."""
    return em_methods(OSEM)


def osem_seeds(method):
    return _osem_seeds(OSEM, method)


def osem_em_args(method, model, seed):
    """methods.one_shot_em.train flags of one EM run."""
    start = work("empo", model, "grpo", f"seed{seed}", "model") if method == "rl_then_em" else osem_model(model)
    prompt = ("selected_control.json" if method == "em_confident" else
              f"selected_rank{_OSEM_RANKS[method]}.json" if method in _OSEM_RANKS else "selected.json")
    return em_train_args(OSEM, method, model, start, seed, osem_data_dir(),
                         work("one_shot_em", model, method, f"seed{seed}"),
                         prompt_file=work("one_shot_em", model, prompt), threads=config["threads"])


rule osem_select:
    """Pick the one prompt from the pool by the variance of k graded samples (at EM's T_s unless set)."""
    priority: 10
    input:
        lambda wc: [work("nano", "model", "model.safetensors")] if OSEM["models"][wc.model] == "nano" else [],
    output:
        work("one_shot_em", "{model}", "selected.json"),
        work("one_shot_em", "{model}", "selected_control.json"),
        [work("one_shot_em", "{model}", f"selected_rank{r}.json") for r in _OSEM_RANKS.values()],
    log:
        log_path("one_shot_em", "{model}", "select"),
    wildcard_constraints:
        model="[^/]+",
    params:
        args=lambda wc: cli(dict(model=osem_model(wc.model), out=work("one_shot_em", wc.model, "selected.json"),
                                 data_dir=osem_data_dir(), template=OSEM["template"], threads=config["threads"],
                                 **_osem_select_args(OSEM))),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "python -m methods.one_shot_em.select {params.args} > {log} 2>&1"


def osem_train_inputs(wc, seeds):
    deps = osem_local_inputs(wc)
    if wc.method == "rl_then_em":
        deps += [work("empo", wc.model, "grpo", f"seed{s}", "model") for s in seeds]
    if wc.method == "em_confident":
        deps.append(work("one_shot_em", wc.model, "selected_control.json"))
    if wc.method in _OSEM_RANKS:
        deps.append(work("one_shot_em", wc.model, f"selected_rank{_OSEM_RANKS[wc.method]}.json"))
    return deps


def osem_train_cmd(wc, seeds):
    return seed_runs(_osem_launcher(OSEM), [cli(osem_em_args(wc.method, wc.model, s)) for s in seeds])


# With group_seeds, the EM runs whose seeds are one_shot_em.seeds run all of them in one job (osem_train_seeds);
# the others (the temperature sweep's single seed) keep one job per seed (osem_train).
_OSEM_ALL = list(osem_methods()) + ["rl_then_em", "em_confident"] + list(_OSEM_RANKS)
_OSEM_GROUPED = [m for m in _OSEM_ALL if GROUP_SEEDS and osem_seeds(m) == list(OSEM["seeds"])
                 and len(OSEM["seeds"]) > 1]
_OSEM_SINGLE = [m for m in _OSEM_ALL if m not in _OSEM_GROUPED]


rule osem_train:
    """Entropy minimisation on the one prompt (main runs, temperature sweep, RL->EM, the control, the prompt
    sensitivity): one seed."""
    priority: 10
    input:
        lambda wc: osem_train_inputs(wc, [int(wc.seed)]),
    output:
        metrics=work("one_shot_em", "{model}", "{method}", "seed{seed}", "metrics.json"),
        ckpt=directory(work("one_shot_em", "{model}", "{method}", "seed{seed}", "checkpoints")),
    log:
        log_path("one_shot_em", "{model}", "{method}", "seed{seed}"),
    wildcard_constraints:
        seed=r"\d+",
        model="[^/]+",
        method="|".join(_OSEM_SINGLE) or "^$",
    params:
        cmd=lambda wc: osem_train_cmd(wc, [int(wc.seed)]),
    resources:
        gpu=lambda wc: gpus("one_shot_em"),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "{params.cmd} > {log} 2>&1"


if _OSEM_GROUPED:

    rule osem_train_seeds:
        """The same, every seed of one_shot_em.seeds in one process (group_seeds)."""
        priority: 10
        input:
            lambda wc: osem_train_inputs(wc, OSEM["seeds"]),
        output:
            metrics=[work("one_shot_em", "{model}", "{method}", f"seed{s}", "metrics.json") for s in OSEM["seeds"]],
            ckpt=[directory(work("one_shot_em", "{model}", "{method}", f"seed{s}", "checkpoints")) for s in OSEM["seeds"]],
        log:
            log_path("one_shot_em", "{model}", "{method}", "seeds"),
        wildcard_constraints:
            model="[^/]+",
            method="|".join(_OSEM_GROUPED),
        params:
            cmd=lambda wc: osem_train_cmd(wc, OSEM["seeds"]),
        resources:
            gpu=lambda wc: gpus("one_shot_em"),
        conda:
            "../envs/llm-cpu.yaml"
        shell:
            "{params.cmd} > {log} 2>&1"


def osem_em_then_rl_args(model, seed):
    args = empo_train_args("grpo", model, seed)  # the empo stage's GRPO baseline budget
    args.update(model=work("one_shot_em", model, "one_shot_em", f"seed{seed}", "checkpoints",
                           f"step_{_ORDER['em_steps']}"),
                paper="one_shot_em", method="em_then_rl", save_model=True,
                eval_datasets=OSEM["eval_datasets"], eval_data_dir=osem_data_dir(),
                eval_protocol=OSEM["eval_protocol"], eval_limit=OSEM.get("eval_limit"),
                out=work("one_shot_em", model, "em_then_rl", f"seed{seed}"))
    return args


rule osem_em_then_rl:
    """GRPO (same budget as the empo stage's baseline) starting from the EM checkpoint."""
    priority: 10
    input:
        lambda wc: [work("one_shot_em", wc.model, "one_shot_em", f"seed{s}", "checkpoints")
                    for s in job_seeds(wc, osem_seeds("em_then_rl"))],
    output:
        metrics=seed_outputs(osem_seeds("em_then_rl"), "one_shot_em", "{model}", "em_then_rl", "seed{seed}", "metrics.json"),
        model=[directory(p) for p in
               seed_outputs(osem_seeds("em_then_rl"), "one_shot_em", "{model}", "em_then_rl", "seed{seed}", "model")]
              if GROUP_SEEDS else directory(work("one_shot_em", "{model}", "em_then_rl", "seed{seed}", "model")),
    log:
        seed_log("one_shot_em", "{model}", "em_then_rl", "seed{seed}"),
    wildcard_constraints:
        seed=r"\d+",
        model="[^/]+",
    params:
        cmd=lambda wc: seed_runs("python -m methods.engine.train_rl",
                                 [cli(osem_em_then_rl_args(wc.model, s)) for s in job_seeds(wc, osem_seeds("em_then_rl"))]),
    resources:
        gpu=lambda wc: gpus("empo"),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "{params.cmd} > {log} 2>&1"


def _skew_subjects():
    subjects = ["base", "one_shot_em"]
    if _ORDER.get("enabled"):
        subjects += ["grpo", "em_then_rl"]
    return subjects


def _skew_seeds():
    return _ORDER.get("seeds") if _ORDER.get("enabled") else OSEM["seeds"][:1]


def osem_skew_model(which, model, seed):
    """(model path, input dependency) of the skewness subject ``which``."""
    if which == "base":
        path = osem_model(model)
        return path, [work("nano", "model", "model.safetensors")] if OSEM["models"][model] == "nano" else []
    if which == "one_shot_em":
        ck = work("one_shot_em", model, "one_shot_em", f"seed{seed}", "checkpoints")
        return f"{ck}/step_{_ORDER.get('em_steps', OSEM['max_steps'])}", [ck]
    if which == "grpo":
        path = work("empo", model, "grpo", f"seed{seed}", "model")
        return path, [path]
    if which == "em_then_rl":
        path = work("one_shot_em", model, "em_then_rl", f"seed{seed}", "model")
        return path, [path]
    raise ValueError(f"config one_shot_em.skewness: unknown subject {which!r}")


def osem_skew_args(wc, seed):
    # every subject but the base is also measured on the base model's samples (the same steps; the docstring of
    # methods/one_shot_em/skewness.py)
    ref = None if wc.which == "base" else osem_skew_model("base", wc.model, seed)[0]
    return cli(dict(model=osem_skew_model(wc.which, wc.model, seed)[0], reference_model=ref,
                    out=work("one_shot_em", wc.model, "skew", wc.which, f"seed{seed}"),
                    data_dir=osem_data_dir(), dataset=_SKEW["dataset"], n_prompts=_SKEW["n_prompts"],
                    temperature=_SKEW["temperature"], max_new_tokens=_SKEW["max_new_tokens"],
                    template=OSEM["template"], seed=seed, threads=config["threads"],
                    method=wc.which, model_name=wc.model))


rule osem_skewness:
    """Mean scipy skewness of full-vocab logits per generated step (20 prompts, T = 0.6)."""
    priority: 10
    input:
        lambda wc: [p for s in job_seeds(wc, _skew_seeds()) for w in {wc.which, "base"}
                    for p in osem_skew_model(w, wc.model, s)[1]],
    output:
        seed_outputs(_skew_seeds(), "one_shot_em", "{model}", "skew", "{which}", "seed{seed}", "metrics.json"),
    log:
        seed_log("one_shot_em", "{model}", "skew", "{which}", "seed{seed}"),
    wildcard_constraints:
        seed=r"\d+",
        model="[^/]+",
        which="base|one_shot_em|grpo|em_then_rl",
    params:
        cmd=lambda wc: seed_runs("python -m methods.one_shot_em.skewness",
                                 [osem_skew_args(wc, s) for s in job_seeds(wc, _skew_seeds())]),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "{params.cmd} > {log} 2>&1"


ONE_SHOT_EM_RUNS = (
    [work("one_shot_em", m, meth, f"seed{s}", "metrics.json")
     for m in OSEM["models"] for meth in list(osem_methods()) + ["rl_then_em", "em_then_rl", "em_confident"]
     + list(_OSEM_RANKS) for s in osem_seeds(meth)]
    + ([work("one_shot_em", m, "skew", w, f"seed{s}", "metrics.json")
        for m in OSEM["models"] for w in _skew_subjects() for s in _skew_seeds()] if _SKEW.get("enabled") else [])
)
