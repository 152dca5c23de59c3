"""GPU smoke test of the paper tier's code paths, in minutes on one GPU (``make gpu-smoke``).

Each stage runs the code path its paper-tier jobs use, on a small randomly initialised Qwen2 model and tiny data,
and prints one timing line; rows go to ``results/gpu-smoke/<version>/smoke.csv`` like any run:

1. ``generate``: the harness's HF generation on CUDA (bf16), greedy + sampled; vLLM too when importable.
2. ``entropy_mechanism``: ``accelerate launch --num_processes 1 -m methods.engine.train_rl`` with KL-Cov, bf16
   autocast over fp32 weights, 2 optimiser steps, validation and the final evaluation of the saved checkpoint.
3. ``empo``: the same entry point with the semantic-entropy reward.
4. ``one_shot_em``: ``methods.one_shot_em.train``, 2 optimiser steps in bf16 on CUDA.
5. ``ppl``: ``methods.ppl.train`` (CPL and P-IQL) with ``--device cuda`` on a 4-episode MetaWorld dataset.

Without CUDA it prints why and exits 0 (CI and CPU machines). Not covered: multi-GPU ZeRO-3 / FSDP sharding
(one GPU) and vLLM colocated rollouts (needs vLLM installed).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _tiny_model(out: Path) -> Path:
    from benchmarks.math.tiny import save_tiny_model

    return save_tiny_model(out, seed=0, hidden_size=64, layers=2, initializer_range=0.3)


def _data(out: Path) -> Path:
    rows = [{"id": f"p{i}", "problem": f"Compute {i} + {i % 5} × 3.", "answer": str(i + 3 * (i % 5))}
            for i in range(32)]
    out.mkdir(parents=True, exist_ok=True)
    for name in ("smoke_train", "smoke_test"):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def _timed(name: str, fn, lines: list[dict]) -> None:
    t0 = time.perf_counter()
    ok, err = True, ""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - a smoke test reports, it does not stop at the first failure
        ok, err = False, f"{type(e).__name__}: {e}"
    dt = time.perf_counter() - t0
    lines.append({"stage": name, "seconds": dt, "ok": ok, "error": err[-500:]})
    print(f"gpu-smoke {name:20s} {'ok ' if ok else 'FAIL'} {dt:7.1f} s {err[-200:]}", flush=True)


def _run(cmd: list[str], log: Path) -> None:
    with open(log, "w") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def main(argv=None) -> int:
    import torch

    if not torch.cuda.is_available():
        print("gpu-smoke: skipped -- no CUDA device visible (torch.cuda.is_available() is False); "
              "run `make gpu-smoke` on a GPU machine")
        return 0
    from repro.results import make_row, make_version, write_run

    lines: list[dict] = []
    tmp = Path(tempfile.mkdtemp(prefix="gpu-smoke-"))
    model = _tiny_model(tmp / "model")
    data = _data(tmp / "data")
    py = sys.executable

    def generate():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from benchmarks.math.generation import Sampling, generate as gen
        from benchmarks.math.prompts import build_prompt

        tok = AutoTokenizer.from_pretrained(model)
        m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.bfloat16).cuda()
        prompts = [build_prompt(f"Compute {i} + 1.", "plain") for i in range(64)]
        gen(m, tok, prompts, Sampling(n=1, max_new_tokens=32), batch_size=64)
        gen(m, tok, prompts, Sampling(n=4, temperature=1.0, max_new_tokens=32, seed=0), batch_size=16)
        import importlib.util

        if importlib.util.find_spec("vllm") is not None:
            gen(str(model), tok, prompts, Sampling(n=2, temperature=1.0, max_new_tokens=32), backend="vllm")

    common = ["--model", str(model), "--train-data", str(data / "smoke_train.jsonl"), "--num-generations", "4",
              "--prompts-per-step", "4", "--ppo-minibatches", "2", "--micro-batch-size", "4", "--rollout-steps", "1",
              "--max-completion-length", "32", "--val-data", str(data / "smoke_test.jsonl"), "--val-limit", "8",
              "--val-every", "1", "--eval-datasets", "smoke_test", "--eval-data-dir", str(data), "--eval-limit", "8",
              "--eval-protocol", "greedy", "--eval-max-new-tokens", "32", "--bf16", "true", "--save-model", "true"]
    launch = [py, "-m", "accelerate.commands.launch", "--num_processes", "1", "--mixed_precision", "bf16",
              "-m", "methods.engine.train_rl"]

    _timed("generate", generate, lines)
    _timed("entropy_mechanism", lambda: _run(launch + common + ["--policy-loss", "kl_cov", "--k-ratio", "0.05",
                                                                "--out", str(tmp / "em")], tmp / "em.log"), lines)
    _timed("empo", lambda: _run(launch + common + ["--reward", "semantic_entropy", "--paper", "empo",
                                                   "--method", "empo", "--out", str(tmp / "empo")], tmp / "empo.log"),
           lines)
    _timed("one_shot_em", lambda: _run([py, "-m", "methods.one_shot_em.train", "--model", str(model), "--out",
                                        str(tmp / "osem"), "--prompt", "Compute 3 + 4 × 2.", "--micro-batch", "4",
                                        "--grad-accum", "2", "--max-steps", "2", "--max-new-tokens", "32",
                                        "--bf16", "true", "--device", "cuda"], tmp / "osem.log"), lines)
    def ppl():
        from benchmarks.metaworld.tiny import write_tiny_dataset

        dataset, prefs = write_tiny_dataset(tmp / "mw")
        for method in ("cpl", "piql"):
            _run([py, "-m", "methods.ppl.train", "--method", method, "--dataset", str(dataset), "--prefs",
                  str(prefs), "--out", str(tmp / f"ppl_{method}"), "--steps", "200", "--bc-steps",
                  "100", "--rm-steps", "50", "--eval-every", "200", "--eval-episodes", "2", "--device", "cuda"],
                 tmp / f"ppl_{method}.log")

    _timed("ppl", ppl, lines)
    version = make_version()
    out = Path("results") / "gpu-smoke" / version
    rows = [make_row("gpu_smoke", ln["stage"], "tiny-qwen2", "smoke", 0, -1, m, float(v))
            for ln in lines for m, v in (("seconds", ln["seconds"]), ("ok", ln["ok"]))]
    write_run(out, rows, config={"gpu": torch.cuda.get_device_name(0)})
    (out / "smoke.json").write_text(json.dumps(lines, indent=2))
    print(f"gpu-smoke: {sum(ln['ok'] for ln in lines)}/{len(lines)} stages ok; logs in {tmp}; rows in {out}")
    return 0 if all(ln["ok"] for ln in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
