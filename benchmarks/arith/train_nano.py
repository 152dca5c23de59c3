"""Supervised fine-tuning of the nano model on the arithmetic ``sft`` split.

    python -m benchmarks.arith.train_nano --data-dir work/tiny/data/arith --out-dir work/tiny/nano/model

Each example is ``build_prompt(problem, "plain") + " " + solution + EOS``; the loss is the mean
token cross-entropy on the response (solution + EOS) only. A nanoGPT-style loop: AdamW, linear
warm-up then cosine decay, random batches drawn with a seeded generator, right padding.

Curriculum (testbed v2): for the first ``first_steps`` steps batches are drawn only from examples whose
``style`` is in ``first_styles``; afterwards from the whole corpus. Measured on the tiny tier: trained on the
mixed-style corpus from the start, the reliable ``careful`` style reached 23% accuracy (T = 1) against 78% for
a careful-only corpus -- the high-loss ``quick`` answers (digits the model cannot compute) swamp the
arithmetic it can learn; 700 careful-only steps and then 300 mixed steps kept 87% (the mixture then sets only
*which* style is used). As in language-model training, the skill comes first and the mixed data later.

The output directory holds the model (``save_pretrained``), its tokenizer, ``train_log.jsonl``
(loss, learning rate, throughput every ``log_every`` steps, and a greedy accuracy check on
held-out ``arith_rl_train`` problems every ``eval_every`` steps) and ``metrics.json`` (the run's
summary rows for the ``nano`` table: final loss, parameters, wall time, throughput).
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from benchmarks.arith.model import NanoModelSpec, build_model, count_parameters
from benchmarks.arith.tokenizer import build_tokenizer
from repro.io import iter_jsonl


@dataclass
class NanoSFTArgs:
    """Train the nano model by SFT on arith_sft.jsonl."""

    data_dir: str = "work/tiny/data/arith"  # directory with arith_sft.jsonl and arith_rl_train.jsonl
    out_dir: str = "work/tiny/nano/model"  # where the model, tokenizer and train_log.jsonl are saved
    seed: int = 0  # seed of the initialisation and the batch order
    threads: int = 1  # torch CPU threads
    hidden_size: int = 128  # residual width
    num_layers: int = 4  # transformer blocks
    num_heads: int = 4  # attention heads
    num_kv_heads: int = 2  # key/value heads
    intermediate_size: int = 384  # MLP width
    max_positions: int = 512  # longest sequence in tokens
    steps: int = 1500  # optimizer steps
    batch_size: int = 64  # sequences per step
    lr: float = 3e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # final learning rate as a fraction of the peak
    warmup_steps: int = 100  # linear warm-up steps
    weight_decay: float = 0.1  # AdamW weight decay (matrices only)
    grad_clip: float = 1.0  # global gradient-norm clip
    log_every: int = 50  # steps between train_log.jsonl loss rows
    eval_every: int = 500  # steps between greedy accuracy checks (0 = only at the end)
    eval_problems: int = 200  # held-out arith_rl_train problems used for the accuracy check
    eval_max_new_tokens: int = 160  # generation budget of the accuracy check
    first_steps: int = 0  # curriculum: the first N steps draw only SFT examples of first_styles
    first_styles: list[str] = field(default_factory=list)  # styles of the curriculum's first phase
    model_name: str = "nano"  # model name used in the result rows

    def model_spec(self) -> NanoModelSpec:
        return NanoModelSpec(self.hidden_size, self.num_layers, self.num_heads, self.num_kv_heads,
                             self.intermediate_size, self.max_positions).check("train_nano")


# ----------------------------------------------------------------------------- data

def plain_prompt(problem: str) -> str:
    """The math harness's ``plain`` template, so SFT and evaluation prompts are the same string."""
    from benchmarks.math.prompts import build_prompt

    return build_prompt(problem, "plain")


def read_jsonl(path: str | Path, required: Sequence[str] = ()) -> list[dict]:
    """Rows of a JSONL file; errors name the file, the line and the missing field."""
    rows = []
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (run benchmarks.arith.make_data first)")
    with path.open() as fh:
        for lineno, row in iter_jsonl(fh, str(path)):
            for key in required:
                if key not in row or row[key] is None:
                    raise ValueError(f"{path}:{lineno}: missing field {key!r}")
            rows.append(row)
    return rows


def encode_sft(rows: Sequence[dict], tokenizer, prompt_fn: Callable[[str], str] = plain_prompt
               ) -> list[tuple[list[int], int]]:
    """Each row -> (token ids of prompt + " " + solution + EOS, number of prompt tokens)."""
    out = []
    for row in rows:
        prompt = tokenizer(prompt_fn(row["problem"]), add_special_tokens=False)["input_ids"]
        response = tokenizer(" " + row["solution"], add_special_tokens=False)["input_ids"]
        out.append((prompt + response + [tokenizer.eos_token_id], len(prompt)))
    return out


def collate(examples: Sequence[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch. Returns input_ids, attention_mask and labels (B, T); labels are -100
    on prompt and padding positions, so the loss covers the response only."""
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (ids, n_prompt) in enumerate(examples):
        t = torch.tensor(ids, dtype=torch.long)
        input_ids[i, :len(ids)] = t
        mask[i, :len(ids)] = 1
        labels[i, n_prompt:len(ids)] = t[n_prompt:]
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def lr_at(step: int, args: NanoSFTArgs) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``lr * min_lr_ratio`` at ``steps``."""
    if step < args.warmup_steps:
        return args.lr * (step + 1) / args.warmup_steps
    frac = (step - args.warmup_steps) / max(1, args.steps - args.warmup_steps)
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * cos)


def curriculum_pool(rows: Sequence[dict], styles: Sequence[str], steps: int, where) -> list[int]:
    """Indices of the SFT rows the curriculum's first ``steps`` draw from (all rows when it is off).

    Rows without a ``style`` field count as ``careful`` (the single-style corpus). Errors name the file."""
    if steps < 0:
        raise ValueError(f"train_nano: first_steps must be >= 0, got {steps}")
    if steps == 0:
        return list(range(len(rows)))
    if not styles:
        raise ValueError("train_nano: first_steps > 0 needs first_styles (e.g. careful)")
    pool = [i for i, r in enumerate(rows) if r.get("style", "careful") in set(styles)]
    if not pool:
        raise ValueError(f"{where}: no SFT example has a style in first_styles={list(styles)}")
    return pool


# ----------------------------------------------------------------------------- quick accuracy

_BOXED = re.compile(r"\\boxed\{(-?\d+)\}")


def boxed_integer(text: str) -> int | None:
    """The integer in the last ``\\boxed{...}`` of a completion, or None."""
    found = _BOXED.findall(text)
    return int(found[-1]) if found else None


@torch.no_grad()
def quick_accuracy(model, tokenizer, rows: Sequence[dict], *, temperature: float = 0.0,
                   max_new_tokens: int = 160, batch_size: int = 100, seed: int = 0) -> float:
    """Fraction of ``rows`` whose completion boxes the gold integer (greedy if temperature == 0).

    A fast check for training and tests (integer answers compare exactly, so this agrees with
    math-verify on this task); reported results come from ``benchmarks.math.evaluate``.
    """
    if not rows:
        return float("nan")
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    torch.manual_seed(seed)
    correct = 0
    try:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            enc = tokenizer([plain_prompt(r["problem"]) for r in chunk], return_tensors="pt",
                            padding=True, add_special_tokens=False)
            kwargs = dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0) if temperature > 0 \
                else dict(do_sample=False)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id, **kwargs)
            texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            for row, text in zip(chunk, texts):
                pred = boxed_integer(text)
                correct += int(pred is not None and pred == int(row["answer"]))
    finally:
        tokenizer.padding_side = side
    return correct / len(rows)


# ----------------------------------------------------------------------------- training

def train(args: NanoSFTArgs, log: Callable[[dict], None] = lambda row: None):
    """Build, train and return ``(model, tokenizer, summary)``; ``log`` receives each log row."""
    from repro.progress import progress

    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    data_dir = Path(args.data_dir)
    sft_rows = read_jsonl(data_dir / "arith_sft.jsonl", required=("problem", "solution"))
    eval_path = data_dir / "arith_rl_train.jsonl"
    eval_rows = read_jsonl(eval_path, required=("problem", "answer"))[:args.eval_problems] \
        if args.eval_problems > 0 and eval_path.exists() else []

    tokenizer = build_tokenizer(model_max_length=args.max_positions)
    model = build_model(args.model_spec(), tokenizer, seed=args.seed)
    examples = encode_sft(sft_rows, tokenizer)
    too_long = [i for i, (ids, _) in enumerate(examples) if len(ids) > args.max_positions]
    if too_long:
        raise ValueError(f"{data_dir / 'arith_sft.jsonl'}:{too_long[0] + 1}: example has "
                         f"{len(examples[too_long[0]][0])} tokens > max_positions={args.max_positions}")

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(args.seed)
    first_pool = curriculum_pool(sft_rows, args.first_styles, args.first_steps, data_dir / "arith_sft.jsonl")
    summary = {"parameters": count_parameters(model)}
    log({"event": "start", "parameters": summary["parameters"], "sft_examples": len(examples)})

    t0 = time.monotonic()
    window_loss, window_tokens, window_start = 0.0, 0, time.monotonic()
    total_tokens = 0
    loss_hist = []
    for step in progress(range(args.steps), desc="nano sft"):
        model.train()
        if step < args.first_steps:
            idx = [first_pool[i] for i in torch.randint(len(first_pool), (args.batch_size,), generator=gen).tolist()]
        else:
            idx = torch.randint(len(examples), (args.batch_size,), generator=gen).tolist()
        batch = collate([examples[i] for i in idx], tokenizer.pad_token_id)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        n_tok = int(batch["attention_mask"].sum())
        total_tokens += n_tok
        window_tokens += n_tok
        loss_value = loss.item()
        window_loss += loss_value
        loss_hist.append(loss_value)
        done = step + 1
        if done % args.log_every == 0 or done == args.steps:
            now = time.monotonic()
            n = done % args.log_every or args.log_every
            log({"event": "train", "step": done, "loss": window_loss / n, "lr": lr_at(step, args),
                 "tokens_per_s": window_tokens / (now - window_start), "steps_per_s": n / (now - window_start),
                 "elapsed_s": now - t0})
            window_loss, window_tokens, window_start = 0.0, 0, time.monotonic()
        if eval_rows and ((args.eval_every and done % args.eval_every == 0) or done == args.steps):
            e0 = time.monotonic()
            acc = quick_accuracy(model, tokenizer, eval_rows, max_new_tokens=args.eval_max_new_tokens)
            log({"event": "eval", "step": done, "acc_greedy_heldout": acc, "eval_s": time.monotonic() - e0})
            summary["acc_greedy_heldout"] = acc
            window_start += time.monotonic() - e0  # keep throughput about training only
    elapsed = time.monotonic() - t0
    tail = loss_hist[-max(1, min(args.log_every, len(loss_hist))):]
    summary.update(loss_first=loss_hist[0], loss_final=sum(tail) / len(tail), train_seconds=elapsed,
                   tokens_per_s=total_tokens / elapsed, steps_per_s=args.steps / elapsed)
    log({"event": "end", **summary})
    model.eval()
    return model, tokenizer, summary


def main(argv=None) -> None:
    from repro.cli import parse_dataclass
    from repro.io import write_jsonl
    from repro.provenance import utc_now
    from repro.results import make_row, write_run

    args = parse_dataclass(NanoSFTArgs, argv)
    started = utc_now()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []

    def log(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        write_jsonl(out / "train_log.jsonl", rows)

    model, tokenizer, summary = train(args, log)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    result = [make_row("nano", "sft", args.model_name, "arith_sft", args.seed, args.steps, metric, float(value))
              for metric, value in (("sft_loss_final", summary["loss_final"]),
                                    ("parameters", summary["parameters"]),
                                    ("train_seconds", summary["train_seconds"]),
                                    ("tokens_per_s", summary["tokens_per_s"]))]
    if "acc_greedy_heldout" in summary:
        result.append(make_row("nano", "sft", args.model_name, "arith_rl_train", args.seed, args.steps,
                               "acc_greedy_heldout", summary["acc_greedy_heldout"]))
    write_run(out, result, config=asdict(args), seed=args.seed, started=started)
    print(f"saved {summary['parameters']:,}-parameter nano model to {out} "
          f"({summary['train_seconds']:.0f}s, final loss {summary['loss_final']:.4f})")


if __name__ == "__main__":
    main()
