"""The PPL section names which of the paper's six MetaWorld tasks the table reports, tunes on, and leaves out."""
import pandas as pd

from repro.report.tables import ppl_tasks_note


def _rows(pairs):
    return pd.DataFrame([{"method": m, "dataset": d, "metric": "success", "value": 0.5} for m, d in pairs])


def test_reported_sweep_and_missing_tasks():
    df = _rows([("cpl", "door-open/heterogeneous"), ("ppl", "door-open/homogeneous"), ("sft", "sweep-into/heterogeneous"),
                ("cpl_a0.1", "plate-slide/heterogeneous"), ("ppl_a0.1_k0.3", "plate-slide/heterogeneous"),
                ("bc", "plate-slide/heterogeneous")])  # the sweep task's BC start is a sweep row too
    note = ppl_tasks_note(df, "budget")
    assert note.startswith("2 of the paper's 6 tasks reported (door-open, sweep-into)")
    assert "plate-slide for the hyper-parameter sweep only" in note
    assert note.endswith("not run: bin-picking, button-press, drawer-open (budget)")


def test_all_six_reported_says_nothing_is_missing():
    tasks = ["bin-picking", "button-press", "door-open", "drawer-open", "plate-slide", "sweep-into"]
    note = ppl_tasks_note(_rows([("cpl", f"{t}/heterogeneous") for t in tasks]), "never shown")
    assert note == f"6 of the paper's 6 tasks reported ({', '.join(tasks)})"
