# Stage: PPL vs CPL / SFT / P-IQL on the MetaWorld datasets (issues 8, 14); table `ppl`.
# One run per task x dataset kind x method x seed (one process per task x kind x seed runs them in turn):
#   work/<tier>/ppl/<task>/<kind>/<method>/seed<seed>/{metrics.json, train_log.jsonl, eval_episodes.jsonl, checkpoint.pt}
# plus one `bc` run per task x kind x seed: the behaviour-cloning phase that SFT, CPL and PPL all start from
# (--init .../bc/seed<s>/policy.pt), evaluated once -- "the BC start" every preference method is compared with;
# it runs first in its dataset and seed's process.
# A run killed mid-way resumes from its checkpoint.pt when the rule runs again.
# Rows: paper=ppl, dataset=<task>/<kind>, metric success (per eval step; step -1 = final), success_best, and for
# CPL/PPL the preference diagnostics (logit_abs_mean, logit_sat_frac, score_logp, score_kl) at the start of
# their contrastive phase (step = bc_steps) and at the end (step -1).

PPL = config["ppl"]
# methods that start from the shared BC policy; P-IQL too when ppl.piql_from_bc (chosen on the sweep task)
PPL_FROM_BC = ("sft", "cpl", "ppl") + (("piql",) if PPL.get("piql_from_bc") else ())


def ppl_methods():
    """The runs per dataset and seed: the BC start (when a method uses it) and the configured methods."""
    return (["bc"] if any(m in PPL_FROM_BC for m in PPL["methods"]) else []) + list(PPL["methods"])


PPL_RUNS = [work("ppl", t, k, m, f"seed{s}", "metrics.json")
            for t in PPL["tasks"] for k in PPL["kinds"] for m in ppl_methods() for s in PPL["seeds"]]

# The hyper-parameter sweep on a task that is not reported (issue 14): CPL at each alpha, PPL at each alpha and
# KL weight lam = ratio * alpha, each from the sweep task's BC start; its rows (methods cpl_a<alpha>,
# ppl_a<alpha>_k<ratio>) go to the `ppl` table and the report's sweep section. The chosen values are fixed in
# ppl.train / ppl.method_overrides before the final run (see the config).
from methods.ppl.experiments import sweep_runs as _sweep_runs, sweep_point as _sweep_point

PPL_SWEEP = _sweep_runs(PPL)
PPL_RUNS += [work("ppl", PPL["sweep"]["task"], k, name, f"seed{s}", "metrics.json")
             for k in PPL["sweep"]["kinds"] for name in PPL_SWEEP for s in PPL["sweep"]["seeds"]] if PPL_SWEEP else []
for _k in (PPL.get("sweep") or {}).get("kinds", []):
    PPL_RUNS += [work("ppl", PPL["sweep"]["task"], _k, "bc", f"seed{s}", "metrics.json") for s in PPL["sweep"]["seeds"]]
PPL_RUNS = list(dict.fromkeys(PPL_RUNS))


def ppl_run_flags(task, kind, method, seed):
    """methods.ppl.train flags of one run: the train config, the method's overrides, its data and its BC start."""
    opts = {**PPL["train"], **PPL.get("method_overrides", {}).get(method, {}), "threads": config["threads"],
            "method": method, "seed": seed, "dataset": work("metaworld", task, f"{kind}.hdf5"),
            "prefs": work("metaworld", task, f"{kind}.prefs.hdf5"), "out": work("ppl", task, kind, method, f"seed{seed}")}
    if method in PPL_FROM_BC:
        opts["init"] = work("ppl", task, kind, "bc", f"seed{seed}", "policy.pt")
    return cli(opts)


# The sweep task's BC starts get their own jobs (the sweep points start from them); a reported task's BC start
# runs first in the job of its dataset and seed (ppl_train).
_PPL_SWEEP_ONLY = [t for t in ([PPL["sweep"]["task"]] if PPL.get("sweep") else []) if t not in PPL["tasks"]]


rule ppl_bc:
    """The BC start of one dataset and seed of the sweep task (bc_steps of behaviour cloning on all transitions),
    evaluated."""
    input:
        dataset=work("metaworld", "{task}", "{kind}.hdf5"),
        prefs=work("metaworld", "{task}", "{kind}.prefs.hdf5"),
    output:
        metrics=work("ppl", "{task}", "{kind}", "bc", "seed{seed}", "metrics.json"),
        policy=work("ppl", "{task}", "{kind}", "bc", "seed{seed}", "policy.pt"),
    log:
        log_path("ppl", "{task}", "{kind}", "bc_seed{seed}"),
    wildcard_constraints:
        task="|".join(_PPL_SWEEP_ONLY) or "(?!)",
        kind="homogeneous|heterogeneous",
        seed=r"\d+",
    params:
        flags=lambda wc: ppl_run_flags(wc.task, wc.kind, "bc", int(wc.seed)),
    threads: config["threads"]
    resources:
        gpu=gpus("ppl"),
    conda:
        "../envs/metaworld.yaml"
    shell:
        "python -m methods.ppl.train {params.flags} > {log} 2>&1"


def ppl_train_runs(wc):
    """The flag sets of the dataset and seed's runs (its BC start first), separated by `--` (repro.multirun runs
    them in turn)."""
    return " -- ".join(ppl_run_flags(wc.task, wc.kind, m, int(wc.seed)) for m in ppl_methods())


rule ppl_train:
    """One dataset and seed of a reported task: its BC start, then every configured method (SFT/CPL/PPL, and P-IQL
    when piql_from_bc, from that BC start), each evaluated at the end. One process runs them in turn, to save the
    ~3 s of torch and MetaWorld start-up per run (99 processes -> 27 at the tiny tier); each run's results are its
    own."""
    input:
        dataset=work("metaworld", "{task}", "{kind}.hdf5"),
        prefs=work("metaworld", "{task}", "{kind}.prefs.hdf5"),
    output:
        [work("ppl", "{task}", "{kind}", m, "seed{seed}", "metrics.json") for m in ppl_methods()]
        + ([work("ppl", "{task}", "{kind}", "bc", "seed{seed}", "policy.pt")] if "bc" in ppl_methods() else []),
    log:
        log_path("ppl", "{task}", "{kind}", "methods_seed{seed}"),
    wildcard_constraints:
        task="|".join(PPL["tasks"]),
        kind="homogeneous|heterogeneous",
        seed=r"\d+",
    params:
        runs=lambda wc: ppl_train_runs(wc),
    threads: config["threads"]
    resources:
        gpu=gpus("ppl"),
    conda:
        "../envs/metaworld.yaml"
    shell:
        "python -m repro.multirun methods.ppl.train {params.runs} > {log} 2>&1"


def ppl_sweep_options(wc):
    """Flags of one sweep run: the train config, the point's method overrides and flags, and its BC start."""
    point = _sweep_point(wc.point)
    from_bc = point.pop("from_bc", True)
    opts = {**PPL["train"], **PPL.get("method_overrides", {}).get(point["method"], {}), **point,
            "run_name": wc.point, "threads": config["threads"]}
    if from_bc:
        opts["init"] = work("ppl", wc.task, wc.kind, "bc", f"seed{wc.seed}", "policy.pt")
    return opts


rule ppl_sweep_point:
    """One point of the sweep on the sweep task: CPL/PPL at an alpha / KL weight (from its BC start), or P-IQL's
    actor from scratch (piql_scratch) or from the BC start (piql_bc)."""
    input:
        dataset=work("metaworld", "{task}", "{kind}.hdf5"),
        prefs=work("metaworld", "{task}", "{kind}.prefs.hdf5"),
        init=work("ppl", "{task}", "{kind}", "bc", "seed{seed}", "policy.pt"),
    output:
        work("ppl", "{task}", "{kind}", "{point}", "seed{seed}", "metrics.json"),
    log:
        log_path("ppl", "{task}", "{kind}", "{point}_seed{seed}"),
    wildcard_constraints:
        task="[a-z-]+",
        kind="homogeneous|heterogeneous",
        point=r"(cpl|ppl)_a[0-9.e-]+(_k[0-9.e-]+)?|piql_(scratch|bc)",
        seed=r"\d+",
    params:
        out=lambda wc: work("ppl", wc.task, wc.kind, wc.point, f"seed{wc.seed}"),
        options=lambda wc: cli(ppl_sweep_options(wc)),
    threads: config["threads"]
    resources:
        gpu=gpus("ppl"),
    conda:
        "../envs/metaworld.yaml"
    shell:
        "python -m methods.ppl.train --seed {wildcards.seed}"
        " --dataset {input.dataset} --prefs {input.prefs} --out {params.out} {params.options} > {log} 2>&1"
