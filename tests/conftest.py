"""Shared fixtures: where the shared math data lives, GPU skipping, the repo root."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_MATH = Path(os.environ.get("REPRO_SHARED_MATH", REPO_ROOT.parent / "shared" / "data" / "math"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_math_dir() -> Path:
    """../shared/data/math (or $REPRO_SHARED_MATH); skips when absent, as in a user's clone."""
    if not (SHARED_MATH / "math500.jsonl").exists():
        pytest.skip(f"shared math data not found at {SHARED_MATH} (a user's clone has no ../shared; "
                    "set REPRO_SHARED_MATH to a directory of the JSONL sets to run this test)")
    return SHARED_MATH


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:
        has_gpu = False
    if has_gpu:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (none on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
