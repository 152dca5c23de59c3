"""Provenance, atomic writes and versioned result tables (repro.io, repro.provenance, repro.results)."""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass

import pytest

from repro import io as rio
from repro import results
from repro.provenance import config_hash, run_metadata


def test_interrupted_write_leaves_old_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "table.csv"
    rio.atomic_write_text(target, "old,content\n")

    def crash(fd):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        rio.atomic_write_text(target, "new,content\n" * 1000)
    assert target.read_text() == "old,content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"], "temp file left behind"


def test_run_metadata_has_every_field():
    meta = run_metadata(config={"lr": 1e-4}, seed=3, command="python -m x")
    for key in ("commit", "dirty", "config_hash", "seed", "versions", "hardware", "command", "started",
                "finished"):
        assert key in meta
    assert meta["seed"] == 3 and meta["command"] == "python -m x"
    assert len(meta["commit"]) == 40 or meta["commit"] == "unknown"
    assert isinstance(meta["dirty"], bool)
    assert {"python", "torch", "numpy"} <= set(meta["versions"])
    assert "CPU cores" in meta["hardware"]


@dataclass
class _Cfg:
    lr: float = 1e-4
    steps: int = 10


def test_config_hash_is_stable_and_sensitive():
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
    assert config_hash(_Cfg()) == config_hash({"lr": 1e-4, "steps": 10})


def _run(tmp_path, name, value, seed=0):
    rows = [results.make_row("nano", "base", "nano", "arith_test", seed, -1, "acc_greedy", value)]
    return results.write_run(tmp_path / name, rows, config={"seed": seed}, seed=seed, started="2026-01-01T00:00:00Z")


def test_write_run_and_collect_table_with_provenance(tmp_path):
    files = [_run(tmp_path, "r0", 0.5, 0), _run(tmp_path, "r1", 0.75, 1)]
    out = results.collect([str(f) for f in files], "nano", "tiny", "v1", results_root=tmp_path / "results")
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(results.COLUMNS)
    assert [float(r["value"]) for r in rows] == [0.5, 0.75]
    for r in rows:
        assert r["commit"] and r["config_hash"] and r["hardware"] and r["started"] and r["finished"]
        assert r["versions"].startswith("pkgs-")  # a key into nano.versions.json
    side = results.read_versions(out)
    assert set(side) == {r["versions"] for r in rows} and "torch" in side[rows[0]["versions"]]
    latest = tmp_path / "results" / "tiny" / "latest" / "nano.csv"
    assert latest.is_symlink() and not os.path.isabs(os.readlink(latest))
    assert latest.resolve() == out.resolve()
    assert results.read_versions(latest) == side  # latest/ links the versions file too
    from repro.report.tables import load_table
    assert "torch" in json.loads(load_table(latest)["versions"].iloc[0])  # the report sees the full mapping


def test_second_reproduction_makes_a_new_version_and_never_overwrites(tmp_path):
    f = str(_run(tmp_path, "r0", 0.5))
    root = tmp_path / "results"
    first = results.collect([f], "nano", "tiny", "20260101T000000Z-aaaaaaa", results_root=root)
    second = results.collect([f], "nano", "tiny", "20260102T000000Z-bbbbbbb", results_root=root)
    assert first.exists() and second.exists() and first != second
    assert (root / "tiny" / "latest" / "nano.csv").resolve() == second.resolve()
    with pytest.raises(results.ResultError, match="already exists"):
        results.collect([f], "nano", "tiny", "20260102T000000Z-bbbbbbb", results_root=root)
    # another table's newer version does not move this table's link
    results.collect([f], "ppl", "tiny", "20260103T000000Z-ccccccc", results_root=root)
    assert (root / "tiny" / "latest" / "nano.csv").resolve() == second.resolve()


def test_make_version_is_sortable_and_new():
    v = results.make_version()
    assert v[:8].isdigit() and v[8] == "T" and "Z-" in v


@pytest.mark.parametrize("bad, match", [
    ({"paper": "p"}, "missing keys"),
    ({**results.make_row("p", "m", "x", "d", 0, -1, "Acc", 1.0)}, "lower-case"),
    ({**results.make_row("p", "m", "x", "d", 0, -1, "acc", "high")}, "not a number"),
])
def test_bad_rows_are_rejected_with_the_field(tmp_path, bad, match):
    with pytest.raises(results.ResultError, match=match):
        results.write_run(tmp_path, [bad])


def test_corrupt_metrics_file_names_the_file(tmp_path):
    p = tmp_path / "metrics.json"
    p.write_text('{"rows": [')
    with pytest.raises(results.ResultError, match="metrics.json: not valid JSON"):
        results.read_run(p)


def test_progress_falls_back_to_log_lines_off_a_terminal():
    import io as _io

    from repro.progress import progress

    stream = _io.StringIO()  # not a TTY, like a Snakemake log file
    assert list(progress(range(5), desc="sft", log_every_s=0.0, stream=stream)) == list(range(5))
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("sft: 1/5") and lines[-1].startswith("sft: done 5")
    assert "\r" not in stream.getvalue()


def test_cpu_model_names_the_x86_family_and_model():
    from repro.provenance import cpu_model

    info = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n\n"
            "processor\t: 1\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: other\n")
    assert cpu_model(info) == "AMD EPYC (family 25 model 17)"  # the first processor's block only
    assert cpu_model("model name\t: Neoverse-N1\n") == "Neoverse-N1"  # no x86 numbers: the name alone
    assert cpu_model("") == cpu_model("\n")  # nothing readable: platform's name, never an empty string
    assert cpu_model("")
