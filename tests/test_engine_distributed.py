"""CPU emulation of the paper tier's distributed RL path (issue 17): two gloo processes, a tiny random Qwen2.

* ``accelerate launch`` with 2 processes, started by the workflow's own launcher string
  (methods.engine.launch.train_rl_launcher), runs ``methods.engine.train_rl`` end to end: validation rows,
  the checkpoint save, the final evaluation of that checkpoint and the results rows, each written once by the
  main process. accelerate turns FSDP / DeepSpeed on only for accelerator devices (its state falls back to
  MULTI_CPU, i.e. DDP over gloo, without one), so this run is data-parallel; before the fix every rank wrote
  ``metrics.json`` and no checkpoint was saved (measured on 3faded3).
* The sharded half is tested directly: a model sharded with FSDP2 ``fully_shard`` over gloo (CPU supports
  it) and the real ValidationCallback. Every rank validates and the run ends; the pre-fix rank-0-only hooks
  hang in the first all-gather and are killed by the timeout (the negative control: the test can fail).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str] | str, timeout: float, **kw) -> subprocess.CompletedProcess | None:
    """Run ``cmd``; on timeout kill it and every descendant (torchrun starts its workers in their own sessions)
    and return None."""
    import psutil

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, shell=isinstance(cmd, str), **kw)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for p in [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        proc.communicate()
        return None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from benchmarks.math.tiny import save_tiny_model

    d = tmp_path_factory.mktemp("dist")
    save_tiny_model(d / "model", hidden_size=32, layers=2)
    rows = [{"id": i, "problem": f"{i}+1", "answer": str(i + 1)} for i in range(32)]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:8]))
    return d


def test_accelerate_launch_two_processes_runs_the_paper_tier_path(setup, tmp_path):
    from methods.engine.launch import train_rl_launcher

    cfg = tmp_path / "accelerate.yaml"  # the shape of config/accelerate/*.yaml; MULTI_GPU -> torchrun workers
    cfg.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nmixed_precision: 'no'\n"
                   f"num_machines: 1\nnum_processes: 2\nmachine_rank: 0\nmain_process_port: {_free_port()}\n"
                   "rdzv_backend: static\nsame_network: true\n")
    launcher = train_rl_launcher({"launcher": "accelerate", "accelerate_config": str(cfg), "num_processes": 2},
                                 "test")
    out = tmp_path / "run"
    args = (f"--model {setup / 'model'} --train-data {setup / 'train.jsonl'} --out {out} --policy-loss clip_cov "
            "--prompts-per-step 4 --num-generations 4 --ppo-minibatches 2 --micro-batch-size 4 --rollout-steps 2 "
            f"--max-completion-length 8 --val-data {setup / 'val.jsonl'} --val-limit 4 --val-every 2 "
            f"--eval-datasets val --eval-data-dir {setup} --eval-limit 8 --eval-max-new-tokens 8 "
            "--eval-n-samples 2 --eval-batch-size 4 --threads 1 --seed 3")
    proc = _run(f"{Path(sys.executable).parent}/{launcher} {args}", timeout=300)
    assert proc is not None, "2-process train_rl did not finish within 300 s (a rank waits on the other)"
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert proc.stdout.count("train_rl: grpo") + proc.stdout.count("train_rl: clip_cov") == 2  # two ranks trained
    assert proc.stdout.count("wrote") == 1  # the results are written by the main process only
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "val/acc" in r] == [0, 2, 4]  # start, every 2, end: once each
    assert [r["step"] for r in log if "entropy" in r] == [1, 2, 3, 4]
    assert (out / "model" / "model.safetensors").is_file()  # the checkpoint the final evaluation reads
    rows = json.loads((out / "metrics.json").read_text())["rows"]
    final = {r["metric"] for r in rows if r["step"] == -1 and r["dataset"] == "val"}
    assert {"acc_greedy", "acc_t1", "maj@2_t1"} <= final, final
    assert all(r["method"] == "clip_cov" and r["seed"] == 3 for r in rows)
    assert len((out / "samples.jsonl").read_text().splitlines()) == 8 * (1 + 2)  # greedy + 2 samples each


@pytest.mark.parametrize("variant", ["current", "rank0_only"])
def test_validation_on_a_sharded_model_needs_every_rank(setup, tmp_path, variant):
    out = tmp_path / variant
    out.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tests.distributed.sharded_validation", str(setup / "model"), str(setup / "val.jsonl"), str(out), variant]
    proc = _run(cmd, timeout=60 if variant == "current" else 40)
    if variant == "rank0_only":  # the negative control: the pre-fix hooks wait in a collective the other rank
        # never joins, until gloo's 10 s timeout (set by the worker) ends them
        assert proc is None or (proc.returncode != 0 and "Timed out" in proc.stdout), \
            f"the rank-0-only validation should hang on a sharded model:\n{proc.stdout[-3000:]}"
        return
    assert proc is not None, "sharded validation did not finish within 60 s"
    assert proc.returncode == 0, proc.stdout[-4000:]
    hist = [json.loads((out / f"history_rank{r}.json").read_text()) for r in (0, 1)]
    assert [h["step"] for h in hist[0]] == [0, 1, 2] and hist[0] == hist[1]  # both ranks, same numbers
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1, 2] and all("val/acc" in r for r in log)  # main process only
