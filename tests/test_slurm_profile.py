"""The SLURM profile names real rules, and every rule that asks for GPUs is sent to the GPU partition."""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _rules_with_gpu() -> tuple[set[str], set[str]]:
    names, gpu = set(), set()
    for smk in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]:
        current = None
        for line in smk.read_text().splitlines():
            m = re.match(r"\s*rule (\w+):", line)
            if m:
                current = m.group(1)
                names.add(current)
            elif re.match(r"\s*gpu\s*=", line) and current is not None:
                gpu.add(current)
    return names, gpu


def test_slurm_profile_matches_the_rules():
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    mapped = set(profile["set-resources"])
    names, gpu = _rules_with_gpu()
    assert gpu, "found no rule with a gpu resource: the parser is out of step with rules/"
    assert mapped <= names, f"profiles/slurm/config.yaml names rules that do not exist: {sorted(mapped - names)}"
    assert gpu <= mapped, f"rules with a gpu resource missing from profiles/slurm/config.yaml: {sorted(gpu - mapped)}"
