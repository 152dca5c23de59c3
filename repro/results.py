"""Result tables in one long format, versioned, with provenance.

A run writes ``<run_dir>/metrics.json`` = {"provenance": {...}, "rows": [...]} with :func:`write_run`.
The table rule collects runs into ``results/<tier>/<version>/<table>.csv`` (never overwriting a
version) and points ``results/<tier>/latest/<table>.csv`` at the newest one (a relative symlink).
Each row carries its run's provenance; the package versions, identical on thousands of per-step
rows, are stored once in ``<table>.versions.json`` next to the CSV and referenced from the
``versions`` column by a short key (:func:`versions_key`; :func:`read_versions` maps keys back).

    python -m repro.results collect --table nano --tier tiny --version V work/tiny/nano/eval/metrics.json ...
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from repro.io import atomic_symlink, atomic_write_json, atomic_write_text
from repro.provenance import finish, git_state, run_metadata, utc_now

ROW_KEYS = ("paper", "method", "model", "dataset", "seed", "step", "metric", "value")
PROVENANCE_KEYS = ("commit", "dirty", "config_hash", "versions", "hardware", "started", "finished")
COLUMNS = ROW_KEYS + PROVENANCE_KEYS
TABLES = ("nano", "entropy_mechanism", "empo", "one_shot_em", "ppl")


class ResultError(ValueError):
    """A malformed result row or metrics file; the message names the file and the field."""


def make_row(paper: str, method: str, model: str, dataset: str, seed: int | None, step: int,
             metric: str, value: float) -> dict[str, Any]:
    """One long-format row; ``step=-1`` means final / not tied to a training step."""
    return dict(paper=paper, method=method, model=model, dataset=dataset, seed=seed, step=step,
                metric=metric, value=value)


def validate_rows(rows: Iterable[dict[str, Any]], where: str = "rows") -> list[dict[str, Any]]:
    """Check every row has exactly ROW_KEYS, a lower-case metric name and a numeric value."""
    checked = []
    for i, row in enumerate(rows):
        missing = [k for k in ROW_KEYS if k not in row]
        extra = [k for k in row if k not in ROW_KEYS]
        if missing or extra:
            raise ResultError(f"{where}: row {i} has missing keys {missing} / unknown keys {extra}")
        if not isinstance(row["metric"], str) or row["metric"] != row["metric"].lower():
            raise ResultError(f"{where}: row {i}: metric {row['metric']!r} must be a lower-case string")
        try:
            value = float(row["value"])
        except (TypeError, ValueError):
            raise ResultError(f"{where}: row {i}: value {row['value']!r} of metric {row['metric']!r} is not a number")
        step = int(row["step"])
        checked.append({**row, "value": value, "step": step})
    return checked


def write_run(out_dir: str | os.PathLike, rows: Sequence[dict[str, Any]], *, config: Any = None,
              seed: int | None = None, started: str | None = None, command: str | None = None,
              extra: dict[str, Any] | None = None) -> Path:
    """Write ``<out_dir>/metrics.json`` (rows + provenance) atomically and return its path.

    ``started`` should be taken (repro.provenance.utc_now()) when the run began, so that the
    report can show the wall time of each stage.
    """
    out = Path(out_dir) / "metrics.json"
    rows = validate_rows(rows, where=str(out))
    meta = finish(run_metadata(config=config, seed=seed, command=command, started=started or utc_now()))
    payload = {"provenance": meta, "rows": rows}
    if extra:
        payload["extra"] = extra
    return atomic_write_json(out, payload)


def read_run(path: str | os.PathLike) -> dict[str, Any]:
    """Load a metrics.json, with errors naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultError(f"{path}: metrics file does not exist") from None
    except json.JSONDecodeError as e:
        raise ResultError(f"{path}: not valid JSON (line {e.lineno}): {e.msg}") from None
    for key in ("provenance", "rows"):
        if key not in data:
            raise ResultError(f"{path}: missing top-level field {key!r}")
    data["rows"] = validate_rows(data["rows"], where=str(path))
    return data


def versions_key(versions: dict[str, Any]) -> str:
    """A short key for a package-versions mapping, stable across runs and machines."""
    blob = json.dumps(versions, sort_keys=True)
    return "pkgs-" + hashlib.sha1(blob.encode()).hexdigest()[:10]


def table_rows(metrics_files: Iterable[str | os.PathLike]) -> tuple[list[dict[str, Any]], dict[str, dict]]:
    """Rows of several runs, each stamped with its own run's provenance columns, and the
    package-versions mapping ``{versions_key: versions}`` their ``versions`` column refers to."""
    out, versions = [], {}
    for f in metrics_files:
        run = read_run(f)
        prov = run["provenance"]
        stamp = {k: prov.get(k) for k in PROVENANCE_KEYS}
        if stamp["versions"]:
            key = versions_key(stamp["versions"])
            versions[key] = stamp["versions"]
            stamp["versions"] = key
        else:
            stamp["versions"] = ""
        out.extend({**row, **stamp} for row in run["rows"])
    return out, versions


def versions_path(table_csv: str | os.PathLike) -> Path:
    """``<dir>/<table>.versions.json`` for ``<dir>/<table>.csv``."""
    return Path(table_csv).with_suffix(".versions.json")


def read_versions(table_csv: str | os.PathLike) -> dict[str, dict]:
    """The ``{versions_key: {package: version}}`` mapping of a table ({} if it has none)."""
    path = versions_path(table_csv)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ResultError(f"{path}: not valid JSON (line {e.lineno}): {e.msg}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ResultError(f"{path}: expected an object mapping key -> {{package: version}}")
    return data


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        v = row["value"]
        writer.writerow({**row, "value": repr(v) if not (isinstance(v, float) and math.isnan(v)) else "nan"})
    return buf.getvalue()


def make_version() -> str:
    """A new, sortable version name: UTC time + short commit, e.g. 20261125T101500Z-0539e42."""
    commit, _ = git_state()
    stamp = utc_now().replace("-", "").replace(":", "")
    return f"{stamp}-{commit[:7]}"


def publish_table(rows: Sequence[dict[str, Any]], table: str, tier: str, version: str,
                  results_root: str | os.PathLike = "results", versions: dict[str, dict] | None = None) -> Path:
    """Write ``results/<tier>/<version>/<table>.csv`` (refusing to overwrite), its
    ``<table>.versions.json`` when ``versions`` is given, and repoint latest/."""
    root = Path(results_root) / tier
    target = root / version / f"{table}.csv"
    if target.exists():
        raise ResultError(f"{target} already exists: versions are never overwritten; use a new version name")
    if versions:
        atomic_write_json(versions_path(target), versions)  # first, so a published CSV always resolves
    atomic_write_text(target, rows_to_csv(rows))
    update_latest(root, table)
    return target


def update_latest(tier_root: str | os.PathLike, table: str) -> Path | None:
    """Point ``<tier_root>/latest/<table>.csv`` (and its versions file) at the newest version folder
    holding that table."""
    tier_root = Path(tier_root)
    versions = sorted(p.parent.name for p in tier_root.glob(f"*/{table}.csv") if p.parent.name != "latest")
    if not versions:
        return None
    side = versions_path(tier_root / versions[-1] / f"{table}.csv")
    latest_side = tier_root / "latest" / side.name
    if side.exists():
        atomic_symlink(f"../{versions[-1]}/{side.name}", latest_side)
    elif latest_side.is_symlink():
        latest_side.unlink()  # the newest version has no versions file: don't point at an older one
    return atomic_symlink(f"../{versions[-1]}/{table}.csv", tier_root / "latest" / f"{table}.csv")


def collect(metrics_files: Sequence[str], table: str, tier: str, version: str,
            results_root: str = "results") -> Path:
    """Collect runs into a new version of a table. An empty list gives a header-only table."""
    rows, versions = table_rows(metrics_files)
    return publish_table(rows, table, tier, version, results_root, versions)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="collect runs' metrics.json into a versioned table")
    c.add_argument("--table", required=True, choices=TABLES)
    c.add_argument("--tier", required=True)
    c.add_argument("--version", required=True)
    c.add_argument("--results-root", default="results")
    c.add_argument("metrics", nargs="*", help="metrics.json files of the runs")
    args = p.parse_args(argv)
    path = collect(args.metrics, args.table, args.tier, args.version, args.results_root)
    print(f"wrote {path} ({len(args.metrics)} runs)")


if __name__ == "__main__":
    main()
