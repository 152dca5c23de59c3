"""PPL experiment plan: the hyper-parameter sweep's run names and their flags (used by rules/ppl.smk).

The sweep (issue 14) runs on a task that is not reported: CPL at each ``alpha`` (``cpl_a<alpha>``) and PPL at each
``alpha`` and KL weight ``lam = ratio * alpha`` (``ppl_a<alpha>_k<ratio>``; ratio 1 is the regret derivation's
lam = alpha); with ``piql_start: [scratch, bc]`` also P-IQL with its actor from scratch (``piql_scratch``, the
official code) and from the BC start (``piql_bc``). Its outcome is read off the `ppl` table and fixed in the config before the final run.
"""
from __future__ import annotations

import re
from typing import Any


def fmt(v: float) -> str:
    return f"{float(v):g}"


def sweep_runs(cfg: dict) -> list[str]:
    """Run names of the sweep in ``cfg["sweep"]`` (empty without one); CPL points first."""
    sw = cfg.get("sweep")
    if not sw:
        return []
    if sw["task"] in cfg["tasks"]:
        raise ValueError(f"ppl.sweep.task {sw['task']!r} is a reported task; the sweep must use another one")
    alphas = [fmt(a) for a in sw["alpha"]]
    starts = list(sw.get("piql_start") or [])
    if bad := [s for s in starts if s not in ("scratch", "bc")]:
        raise ValueError(f"ppl.sweep.piql_start: {bad} not in [scratch, bc]")
    return ([f"cpl_a{a}" for a in alphas] + [f"ppl_a{a}_k{fmt(r)}" for a in alphas for r in sw["kl_ratio"]]
            + [f"piql_{s}" for s in starts])


_POINT = re.compile(r"^(cpl|ppl)_a([0-9.e-]+)(?:_k([0-9.e-]+))?$")
_PIQL = re.compile(r"^piql_(scratch|bc)$")


def sweep_point(name: str) -> dict[str, Any]:
    """Flags of one sweep run from its name: ``ppl_a0.3_k1`` -> {method: ppl, alpha: 0.3, lam: 0.3};
    ``piql_bc`` -> {method: piql, from_bc: True} (``from_bc`` is popped by the rule: whether to pass ``--init``)."""
    if p := _PIQL.match(name):
        return {"method": "piql", "from_bc": p.group(1) == "bc"}
    m = _POINT.match(name)
    if not m or (m.group(1) == "ppl") != (m.group(3) is not None):
        raise ValueError(f"ppl sweep: cannot read a sweep point from {name!r} (cpl_a<alpha> | ppl_a<alpha>_k<ratio> | piql_scratch | piql_bc)")
    method, alpha = m.group(1), float(m.group(2))
    out: dict[str, Any] = {"method": method, "alpha": alpha}
    if method == "ppl":
        out["lam"] = float(m.group(3)) * alpha
    return out
