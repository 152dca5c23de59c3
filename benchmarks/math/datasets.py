"""Math evaluation / training sets as lists of ``{id, source, problem, answer}`` dicts.

Two sources, chosen by config (../shared/spec/evaluation.md, "Data"):

* ``local``: ``<local_dir>/<name>.jsonl``, one JSON object per line with keys ``id``, ``source``,
  ``problem``, ``answer`` (extra keys are kept). Any name works, e.g. the nano task's
  ``arith_test``. A malformed line is an error naming ``file:line``.
* ``hub``: a Hugging Face dataset, mapped to the same keys by :data:`HUB_SOURCES` (or any id given
  as ``owner/name[:config][@split]``, whose problem/answer columns are guessed from common names).
* ``auto``: local if the file exists, else the Hub; when neither works the error lists both.

Also a CLI that materialises sets as local JSONL (the paper tier's data rule)::

    python -m benchmarks.math.datasets --names math500,aime24 --source hub --out-dir work/paper/data/math
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

__all__ = [
    "DatasetError",
    "HubSpec",
    "HUB_SOURCES",
    "load_problems",
    "read_jsonl",
    "write_jsonl",
    "from_hub",
    "parse_hub_id",
]

REQUIRED_KEYS = ("id", "source", "problem", "answer")


class DatasetError(ValueError):
    """A dataset that cannot be found or parsed; the message says what was tried / where."""


@dataclass(frozen=True)
class HubSpec:
    """Where a named set lives on the Hugging Face Hub and how its columns map to ours."""

    repo: str  # dataset id, e.g. "HuggingFaceH4/MATH-500"
    split: str = "test"  # split to read
    config: str | None = None  # dataset config name, if the repo has several
    problem_field: str | None = None  # column holding the problem (None: guess)
    answer_field: str | None = None  # column holding the final answer (None: guess)
    answer_from_solution: str | None = None  # column whose last \boxed{} is the answer
    limit: int | None = None  # keep the first N usable rows (e.g. NuminaMath's 20k subset)


#: Standard public copies of the evaluation sets (column names as published on the Hub).
HUB_SOURCES: dict[str, HubSpec] = {
    "math500": HubSpec("HuggingFaceH4/MATH-500", "test", None, "problem", "answer"),
    "aime24": HubSpec("HuggingFaceH4/aime_2024", "train", None, "problem", "answer"),
    "aime25": HubSpec("math-ai/aime25", "test", None, "problem", "answer"),
    "amc23": HubSpec("math-ai/amc23", "test", None, "question", "answer"),
    "minerva": HubSpec("math-ai/minervamath", "test", None, "question", "answer"),
    "olympiadbench": HubSpec("math-ai/olympiadbench", "test", None, "question", "answer"),
    "numina20k_train": HubSpec(
        "AI-MO/NuminaMath-CoT", "train", None, "problem", None, answer_from_solution="solution",
        limit=20_000,
    ),
}

_PROBLEM_FIELDS = ("problem", "question", "Problem", "Question", "prompt", "input")
_ANSWER_FIELDS = ("answer", "final_answer", "Answer", "gt_answer", "target", "ground_truth")


# --------------------------------------------------------------------------------------------
# Local JSONL
# --------------------------------------------------------------------------------------------
def _check_row(obj: Any, where: str) -> dict:
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in obj]
    if missing:
        raise DatasetError(f"{where}: missing key(s) {missing} (need {list(REQUIRED_KEYS)})")
    if not isinstance(obj["problem"], str) or not obj["problem"].strip():
        raise DatasetError(f"{where}: 'problem' must be a non-empty string")
    ans = obj["answer"]
    if isinstance(ans, bool) or not isinstance(ans, (str, int, float)):
        raise DatasetError(f"{where}: 'answer' must be a string or number, got {ans!r}")
    obj["answer"] = str(ans)
    obj["id"] = str(obj["id"])
    return obj


def read_jsonl(path: str | os.PathLike, limit: int | None = None) -> list[dict]:
    """Read and validate a problems JSONL file; errors name ``file:line``. Blank lines skipped."""
    path = Path(path)
    rows: list[dict] = []
    seen: dict[str, int] = {}
    unbalanced: list[int] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
            obj = _check_row(obj, where)
            if obj["id"] in seen:
                raise DatasetError(f"{where}: duplicate id {obj['id']!r} (first on line {seen[obj['id']]})")
            seen[obj["id"]] = lineno
            rows.append(obj)
            if not braces_balanced(obj["answer"]):
                unbalanced.append(lineno)
            if limit is not None and len(rows) >= limit:
                break
    if unbalanced:
        warnings.warn(
            f"{path}: {len(unbalanced)} answer(s) with unbalanced braces (lines {unbalanced[:5]}"
            f"{' ...' if len(unbalanced) > 5 else ''}); they look truncated and cannot be matched",
            stacklevel=2,
        )
    return rows


def braces_balanced(text: str) -> bool:
    """True when every unescaped ``{`` of ``text`` is closed (``\\{``/``\\}`` are literal)."""
    depth, i = 0, 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "{}\\":
            i += 2
            continue
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth < 0:
                return False
        i += 1
    return depth == 0


def write_jsonl(rows: Iterable[dict], path: str | os.PathLike) -> Path:
    """Write rows as JSONL atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------------
# Hugging Face Hub
# --------------------------------------------------------------------------------------------
def parse_hub_id(hub_id: str) -> HubSpec:
    """``owner/name[:config][@split]`` -> HubSpec with guessed columns."""
    split = "test"
    if "@" in hub_id:
        hub_id, split = hub_id.rsplit("@", 1)
    config = None
    if ":" in hub_id:
        hub_id, config = hub_id.split(":", 1)
    return HubSpec(hub_id, split, config)


def _pick(columns: list[str], preferred: str | None, candidates: tuple[str, ...], what: str, repo: str) -> str:
    if preferred is not None:
        if preferred not in columns:
            raise DatasetError(f"hub dataset {repo}: no {what} column {preferred!r} (columns: {columns})")
        return preferred
    for c in candidates:
        if c in columns:
            return c
    raise DatasetError(f"hub dataset {repo}: cannot find a {what} column among {columns} (tried {list(candidates)})")


def _answer_text(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):  # e.g. OlympiadBench's final_answer is a list
        value = ", ".join(str(v) for v in value) if value else None
    if value is None:
        return None
    text = str(value).strip()
    return text.strip("$").strip() or None


def from_hub(name: str, spec: HubSpec, limit: int | None = None) -> list[dict]:
    """Download a Hub dataset with ``datasets.load_dataset`` and map it to our row format."""
    from datasets import load_dataset  # heavy import, only on this path

    ds = load_dataset(spec.repo, spec.config, split=spec.split)
    columns = list(ds.column_names)
    pcol = _pick(columns, spec.problem_field, _PROBLEM_FIELDS, "problem", spec.repo)
    if spec.answer_from_solution:
        from benchmarks.math.grading import extract_boxed

        scol = _pick(columns, spec.answer_from_solution, (), "solution", spec.repo)
    else:
        acol = _pick(columns, spec.answer_field, _ANSWER_FIELDS, "answer", spec.repo)
    caps = [x for x in (limit, spec.limit) if x is not None]
    cap = min(caps) if caps else None
    rows = []
    for i, ex in enumerate(ds):
        if spec.answer_from_solution:
            answer = _answer_text(extract_boxed(ex[scol]))
        else:
            answer = _answer_text(ex[acol])
        if answer is None or not str(ex[pcol]).strip():
            continue
        rows.append({"id": f"{name}-{i}", "source": name, "problem": str(ex[pcol]), "answer": answer})
        if cap is not None and len(rows) >= cap:
            break
    if not rows:
        raise DatasetError(f"hub dataset {spec.repo} ({spec.split}) gave no usable rows for {name!r}")
    return rows


_parse_hub_id = parse_hub_id  # older name, used by methods.engine.train_rl


# --------------------------------------------------------------------------------------------
# The one entry point
# --------------------------------------------------------------------------------------------
def load_problems(
    name: str,
    source: str = "local",
    local_dir: str | os.PathLike | None = None,
    hub_id: str | None = None,
    limit: int | None = None,
) -> list[dict]:
    """Load problem set ``name`` as a list of ``{id, source, problem, answer, ...}`` dicts.

    source: ``"local"`` (``<local_dir>/<name>.jsonl``), ``"hub"`` (``hub_id`` or the default in
    :data:`HUB_SOURCES`) or ``"auto"`` (local when the file exists, else the Hub). ``limit`` keeps
    the first N rows. Raises :class:`DatasetError` naming every place that was tried.
    """
    if source not in ("local", "hub", "auto"):
        raise DatasetError(f"load_problems: source must be 'local', 'hub' or 'auto', got {source!r}")
    if limit is not None and limit < 1:
        raise DatasetError(f"load_problems: limit must be >= 1, got {limit}")
    tried: list[str] = []
    if source in ("local", "auto"):
        if local_dir is None:
            tried.append("local: no local_dir given")
        else:
            path = Path(local_dir) / f"{name}.jsonl"
            if path.is_file():
                return read_jsonl(path, limit=limit)
            tried.append(f"local: {path} does not exist")
        if source == "local":
            raise DatasetError(f"cannot load dataset {name!r}: " + "; ".join(tried))
    spec = parse_hub_id(hub_id) if hub_id else HUB_SOURCES.get(name)
    if spec is None:
        tried.append(f"hub: no hub id for {name!r} (known: {sorted(HUB_SOURCES)}; pass hub_id)")
    else:
        label = f"hub: {spec.repo}" + (f":{spec.config}" if spec.config else "") + f"@{spec.split}"
        try:
            return from_hub(name, spec, limit=limit)
        except DatasetError as e:
            tried.append(f"{label}: {e}")
        except Exception as e:  # noqa: BLE001 - offline, missing repo, auth: report, don't crash
            tried.append(f"{label}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    raise DatasetError(f"cannot load dataset {name!r}; tried " + "; ".join(tried))


# --------------------------------------------------------------------------------------------
# CLI: materialise sets as local JSONL
# --------------------------------------------------------------------------------------------
@dataclass
class Args:
    """Write problem sets as <out_dir>/<name>.jsonl (validated), from a local dir or the Hub."""

    names: list[str]  # comma-separated set names, e.g. math500,aime24
    out_dir: str  # output directory
    source: str = "auto"  # local | hub | auto
    local_dir: str | None = None  # directory of <name>.jsonl files (local/auto)
    limit: int | None = None  # keep only the first N rows of each set
    hub_id: str | None = None  # Hub id override, owner/name[:config][@split] (one name only)


def main(argv: list[str] | None = None) -> None:
    from repro.cli import parse_dataclass

    args = parse_dataclass(Args, argv)
    if args.hub_id and len(args.names) != 1:
        raise SystemExit(f"--hub-id {args.hub_id!r} needs exactly one --names entry, got {args.names}")
    for name in args.names:
        rows = load_problems(name, args.source, args.local_dir, hub_id=args.hub_id, limit=args.limit)
        path = write_jsonl(rows, Path(args.out_dir) / f"{name}.jsonl")
        print(f"{name}: {len(rows)} problems -> {path}", flush=True)


if __name__ == "__main__":
    main()
