"""The rollout benchmark runs, checks that both sides agree, and accounts the compact loop's kernel time."""
from benchmarks.perf import generation_bench


def test_bench_small_random_model(tmp_path):
    out = tmp_path / "gen.json"
    rows = generation_bench.main(["--model", "none", "--data", str(tmp_path / "missing.jsonl"), "--batch-sizes", "4",
                                  "--prompts", "8", "--max-new-tokens", "6", "--repeats", "1", "--out", str(out)])
    (row,) = rows
    assert row["identical"] and row["tokens"] > 0
    # the kernels' own time is part of the loop's wall time, so the ceiling is at least the measured speedup
    assert 0 < row["fast_kernel_s"] < row["fast_s"]
    assert row["speedup_ceiling"] > row["speedup"]
    # the GEMMs are a part of the arithmetic kernels, so their ceiling is the higher one
    assert 0 < row["fast_gemm_s"] <= row["fast_kernel_s"]
    assert row["speedup_ceiling_gemm"] >= row["speedup_ceiling"]
    assert out.exists()
