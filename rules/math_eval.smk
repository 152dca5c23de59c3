# Stage: the math evaluation harness as a rule (issue 3).
#
#   work/<tier>/math_eval/<run>/metrics.json, samples.jsonl
#
# config["math_eval"]["runs"]: label -> {model, datasets, protocol, template, ...} (any flag of
# `python -m benchmarks.math.evaluate`). Other stages evaluate their own checkpoints; they can reuse
# `math_eval_args(run_cfg, out_dir)` to build the same command line, e.g.
#
#   shell: "python -m benchmarks.math.evaluate {params.args} > {log} 2>&1"
#   params: args=lambda wc: math_eval_args({"model": ..., "datasets": [...], "protocol": "empo"}, out)

MATH_EVAL = config["math_eval"]
MATH_EVAL_RUN_CFG = MATH_EVAL.get("runs", {})
MATH_EVAL_RUNS = [work("math_eval", label, "metrics.json") for label in MATH_EVAL_RUN_CFG]


def math_eval_args(run_cfg, out_dir):
    """CLI flags for benchmarks.math.evaluate from a run's config (defaults: config math_eval)."""
    values = {"backend": MATH_EVAL.get("backend", "hf"), "grade_workers": MATH_EVAL.get("grade_workers"),
              "grade_timeout_s": MATH_EVAL.get("grade_timeout_s", 5.0), "seed": config["seed"],
              "threads": config["threads"], **run_cfg, "out": out_dir}
    if "data_dir" not in values and values.get("source", "local") != "hub":
        values["data_dir"] = MATH_EVAL.get("data_dir") or MATH_DATA_DIR
    return cli({k: v for k, v in values.items() if v is not None})


def _math_eval_inputs(wc):
    run = MATH_EVAL_RUN_CFG[wc.run]
    if run.get("data_dir") or MATH_EVAL.get("data_dir") or run.get("source") == "hub":
        return []
    return [os.path.join(MATH_DATA_DIR, f"{d}.jsonl") for d in run["datasets"]]  # built by rules/data.smk


rule math_eval:
    """Evaluate one configured model with a paper's protocol (metrics.json + samples.jsonl)."""
    input:
        _math_eval_inputs,
    output:
        metrics=work("math_eval", "{run}", "metrics.json"),
        samples=work("math_eval", "{run}", "samples.jsonl"),
    wildcard_constraints:
        run="|".join(MATH_EVAL_RUN_CFG) or "__none__",
    log:
        log_path("math_eval", "{run}"),
    params:
        args=lambda wc: math_eval_args(
            {"model_name": wc.run, "paper": "math_eval", "method": "base", **MATH_EVAL_RUN_CFG[wc.run]},
            work("math_eval", wc.run)),
    threads: config["threads"]
    resources:
        gpu=gpus("math_eval"),
    conda:
        "../envs/llm-gpu.yaml" if gpus("math_eval") else "../envs/llm-cpu.yaml"
    shell:
        "python -m benchmarks.math.evaluate {params.args} > {log} 2>&1"


rule math_eval_all:
    input:
        MATH_EVAL_RUNS,
