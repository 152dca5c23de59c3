# Stage: the nano testbed (issue 4). Writes the arithmetic task's splits, trains the nano Qwen2
# model by SFT and evaluates it through the math harness (table `nano`).
#
#   work/<tier>/data/arith/arith_{sft,rl_train,unlabeled,val,test,hard}.jsonl   (NANO_DATA)
#   work/<tier>/nano/model/  save_pretrained model + tokenizer + train_log.jsonl + metrics.json
#   work/<tier>/nano/eval/metrics.json, samples.jsonl                       (baseline, method "base")
#
# Other stages load the model directory like a hub id (AutoModelForCausalLM.from_pretrained) and
# depend on NANO_MODEL (its weights file, i.e. work/<tier>/nano/model/model.safetensors; not the
# directory) and on any file of NANO_DATA (one rule writes all splits) as rule inputs.

NANO = config["nano"]
import benchmarks.arith.experiments as _nano  # the three commands' flags (shared with `make verify`)
NANO_SPLITS = ["sft", "rl_train", "unlabeled", "val", "test", "hard"]
NANO_DATA_DIR = work("data", "arith")
NANO_DATA = {split: f"{NANO_DATA_DIR}/arith_{split}.jsonl" for split in NANO_SPLITS}
NANO_MODEL_DIR = work("nano", "model")
NANO_MODEL = f"{NANO_MODEL_DIR}/model.safetensors"
NANO_EVAL_DIR = work("nano", "eval")

# The runs of the `nano` table: the baseline evaluation, and the SFT run (loss, size, wall time).
NANO_RUNS = [f"{NANO_EVAL_DIR}/metrics.json", f"{NANO_MODEL_DIR}/metrics.json"]


rule nano_data:
    """The arithmetic task's six splits (deterministic in config nano.data)."""
    priority: 100
    output:
        list(NANO_DATA.values()),
    log:
        log_path("nano", "data"),
    params:
        out=lambda wildcards, output: os.path.dirname(output[0]),
        options=cli(_nano.data_options(config)),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "python -m benchmarks.arith.make_data --out-dir {params.out} {params.options} > {log} 2>&1"


rule nano_sft:
    """SFT of a fresh nano Qwen2 model on arith_sft (held-out greedy checks on arith_rl_train)."""
    priority: 100
    input:
        sft=NANO_DATA["sft"],
        heldout=NANO_DATA["rl_train"],
    output:
        model=NANO_MODEL,
        config=f"{NANO_MODEL_DIR}/config.json",
        tokenizer=f"{NANO_MODEL_DIR}/tokenizer.json",
        log=f"{NANO_MODEL_DIR}/train_log.jsonl",
        metrics=f"{NANO_MODEL_DIR}/metrics.json",
    log:
        log_path("nano", "sft"),
    params:
        data=lambda wildcards, input: os.path.dirname(input.sft),
        out=lambda wildcards, output: os.path.dirname(output.model),
        options=cli(_nano.sft_options(config)),
    threads: config["threads"]
    resources:
        gpu=gpus("nano"),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "python -m benchmarks.arith.train_nano --data-dir {params.data} --out-dir {params.out}"
        " {params.options} > {log} 2>&1"


rule nano_eval:
    """Baseline of the nano model through the math harness (greedy + 8 samples at T=1 on the CPU tiers)."""
    priority: 100
    input:
        model=NANO_MODEL,
        data=[f"{NANO_DATA_DIR}/{name}.jsonl" for name in NANO["eval"]["datasets"]],
    output:
        metrics=f"{NANO_EVAL_DIR}/metrics.json",
        samples=f"{NANO_EVAL_DIR}/samples.jsonl",
    log:
        log_path("nano", "eval"),
    params:
        model=lambda wildcards, input: os.path.dirname(input.model),
        data=lambda wildcards, input: os.path.dirname(input.data[0]),
        out=lambda wildcards, output: os.path.dirname(output.metrics),
        options=cli(_nano.eval_options(config)),
    threads: config["threads"]
    resources:
        gpu=gpus("nano"),
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "python -m benchmarks.math.evaluate --model {params.model} --data-dir {params.data} --out {params.out}"
        " {params.options} > {log} 2>&1"
