# Stage: math datasets as validated local JSONL (issue 3).
#
#   work/<tier>/data/math/<name>.jsonl   one {id, source, problem, answer} object per line
#
# config["data"]: `sets` to materialise, from `source` local | hub | auto (`local_dir`, e.g.
# ../shared/data/math, or the Hugging Face ids of benchmarks.math.datasets.HUB_SOURCES, or the
# per-set overrides in `hub`). The CPU tiers need none (they evaluate on the arith task); stages may
# also read a local dir directly. MATH_DATA maps set name -> file for rules that want it as input.

DATA = config["data"]
MATH_DATA_DIR = work("data", "math")
MATH_DATA = {name: f"{MATH_DATA_DIR}/{name}.jsonl" for name in DATA.get("sets", [])}


def _math_data_args(wc):
    return cli({"names": [wc.name], "out_dir": MATH_DATA_DIR, "source": DATA.get("source", "auto"),
                "local_dir": DATA.get("local_dir"), "limit": DATA.get("limit"),
                **({"hub_id": DATA["hub"][wc.name]} if wc.name in DATA.get("hub", {}) else {})})


rule math_data:
    """One math set as local JSONL, validated line by line (errors name file:line)."""
    output:
        f"{MATH_DATA_DIR}/{{name}}.jsonl",
    wildcard_constraints:
        name="|".join(MATH_DATA) or "__none__",
    log:
        log_path("data", "math_{name}"),
    params:
        args=_math_data_args,
    conda:
        "../envs/llm-cpu.yaml"
    shell:
        "python -m benchmarks.math.datasets {params.args} > {log} 2>&1"


rule math_data_all:
    input:
        list(MATH_DATA.values()),
