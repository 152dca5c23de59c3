"""EMPO's GRPO-with-labels baseline taken from the entropy-mechanism stage's GRPO run of the same budget.

    python -m methods.empo.share_grpo --src work/tiny/entropy_mechanism/nano/grpo/seed0 --dst work/tiny/empo/nano/grpo/seed0

When the two stages configure the same GRPO run (checked by ``methods.empo.experiments.shared_grpo``: every
training and evaluation flag equal), training it twice only spends the tier's budget twice. This copies the
run's rows relabelled ``paper = empo`` (provenance kept: the rows say when and where the run really ran) and
its saved model, which one-shot EM's order and skewness runs start from.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ShareArgs:
    """Copy a GRPO run of the entropy-mechanism stage into the EMPO stage."""

    src: str  # the entropy-mechanism run directory (metrics.json, model/)
    dst: str  # the EMPO run directory to write


def main(argv=None) -> int:
    from repro.cli import parse_dataclass
    from repro.io import atomic_write_json
    from repro.results import read_run

    args = parse_dataclass(ShareArgs, argv)
    src, dst = Path(args.src), Path(args.dst)
    run = read_run(src / "metrics.json")
    if not (src / "model" / "config.json").exists():
        raise SystemExit(f"{src / 'model'}: no saved model (set entropy_mechanism.save_model_methods: [grpo])")
    for row in run["rows"]:
        row["paper"] = "empo"
    run.setdefault("extra", {})["shared_from"] = str(src)
    dst.mkdir(parents=True, exist_ok=True)
    if (dst / "model").exists():
        shutil.rmtree(dst / "model")
    shutil.copytree(src / "model", dst / "model")
    for name in ("train_log.jsonl", "samples.jsonl"):
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)
    atomic_write_json(dst / "metrics.json", run)
    print(f"share_grpo: {src} -> {dst} ({len(run['rows'])} rows)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
