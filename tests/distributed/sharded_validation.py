"""Worker for tests/test_engine_distributed.py: run under ``torch.distributed.run`` (gloo, CPU).

Shards a tiny Qwen2 with FSDP2 (``fully_shard`` per decoder layer and at the root, as
config/accelerate/fsdp.yaml does on GPUs) and drives the *real* ``ValidationCallback`` with the real
validation function of ``methods.engine.train_rl`` through the trainer's hooks (begin, two steps, end).
A sharded forward all-gathers each layer's parameters, so every rank must take part in ``generate``.

    python -m torch.distributed.run --standalone --nproc_per_node 2 -m tests.distributed.sharded_validation \\
        MODEL_DIR DATA_JSONL OUT_DIR {current|rank0_only}

``rank0_only`` is the callback as it was before issue 17 (methods/engine/trainer.py at 3faded3, lines
274-284: validate only ``if state.is_world_process_zero``): rank 0 waits in an all-gather that rank 1 never
joins, so that variant must hang (the test runs it under a timeout as a negative control).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist


def main(model_dir: str, data: str, out: str, variant: str) -> None:
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from methods.engine.train_rl import greedy_accuracy, read_jsonl
    from methods.engine.trainer import JsonlLogCallback, ValidationCallback

    from datetime import timedelta

    dist.init_process_group("gloo", timeout=timedelta(seconds=10))  # a hung collective fails instead of waiting
    rank = dist.get_rank()
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    assert type(next(model.parameters())).__name__ == "DTensor"  # really sharded

    class RankZeroOnly(ValidationCallback):  # the pre-fix hooks
        def on_train_begin(self, args, state, control, model=None, **kw):
            if state.is_world_process_zero:
                self._run(model, state.global_step, True)

        def on_step_end(self, args, state, control, model=None, **kw):
            if state.is_world_process_zero and state.global_step % self.every == 0:
                self._run(model, state.global_step, True)

        def on_train_end(self, args, state, control, model=None, **kw):
            if state.is_world_process_zero:
                self._run(model, state.global_step, True)

    rows = read_jsonl(data, 4)
    sink = JsonlLogCallback(Path(out) / "train_log.jsonl")  # on every rank, as build_trainer does
    cls = RankZeroOnly if variant == "rank0_only" else ValidationCallback
    cb = cls(lambda m: greedy_accuracy(m, tok, rows, "plain", 6, 4), every=1, sink=sink)
    state = SimpleNamespace(global_step=0, is_world_process_zero=rank == 0)
    cb.on_train_begin(None, state, None, model=model)
    for step in (1, 2):
        state.global_step = step
        cb.on_step_end(None, state, None, model=model)
    cb.on_train_end(None, state, None, model=model)
    dist.barrier()
    (Path(out) / f"history_rank{rank}.json").write_text(json.dumps(cb.history))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:5])
