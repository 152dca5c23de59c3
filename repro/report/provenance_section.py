"""The report's provenance section: commits, config hashes, hardware, packages, the recorded ``make verify``
spread of the same seed, and wall times per stage.

A mixin of :class:`repro.report.build.Builder` (it reads the builder's tables and config).
"""
from __future__ import annotations

import hashlib
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from repro.report.format import md_table, shown_path
from repro.report.tables import TABLES, provenance, read_wall_times, wall_times_note


def config_source(path: Path, commit: str | None) -> tuple[bytes | None, str]:
    """The bytes of config file ``path`` as committed at ``commit`` and where they came from.

    A version's report names the config its tables ran with. Read from the working tree, a report rebuilt after
    the config changed would name today's file, so the file is taken from git at the tables' commit when git has
    it there. When git has the commit but not the file there, the run used an uncommitted file whose content is
    unknown: ``None`` with ``"not in <commit>"``. Without the commit (e.g. a shallow clone) the working file is
    used (``"working tree"``), or ``None`` when it is missing.
    """
    if commit:
        git = ["git", "-C", str(path.resolve().parent)]
        try:
            if subprocess.run(git + ["cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True).returncode == 0:
                # "<commit>:./<name>": the path relative to the file's own directory, wherever the repository root is
                out = subprocess.run(git + ["show", f"{commit}:./{path.name}"], capture_output=True)
                if out.returncode:  # the run used a file its commit did not have: today's is not it either
                    return None, f"not in `{commit[:7]}`"
                return out.stdout, f"at `{commit[:7]}`"
        except OSError:  # no git, or the directory is gone
            pass
    return (path.read_bytes(), "working tree") if path.exists() else (None, "missing")


def _config_named(path: Path, commit: str | None) -> str:
    data, where = config_source(path, commit)
    if data is None:
        return f"`{shown_path(path)}` ({where})"
    return f"`{shown_path(path)}` {where} (sha256 {hashlib.sha256(data).hexdigest()[:12]})"


class ProvenanceSection:
    def provenance_section(self) -> str:
        prov = provenance(self.tables)
        lines = ["## Provenance", ""]
        if not prov:
            lines.append("No result tables found: nothing has run.\n")
        else:
            hashes = prov["config_hashes"]
            cfg_line = (", ".join(f"`{h}`" for h in hashes) if len(hashes) <= 8
                        else f"{len(hashes)} distinct (column `config_hash` of the tables)") or "–"
            files = [Path(f) for f in self.cfg.config_file.split(",") if f.strip()]
            if files:
                commit = prov["commits"][0] if len(prov["commits"]) == 1 else None
                named = ", ".join(_config_named(f, commit) for f in files)
                cfg_line = f"{named}; run config hashes: {cfg_line}"
            rows = [["commit", ", ".join(f"`{c}`" for c in prov["commits"]) or "–"],
                    ["dirty working tree", "yes" if prov["dirty"] else "no"],
                    ["config", cfg_line],
                    ["hardware", "; ".join(prov["hardware"]) or "–"],
                    ["results", f"`{self.cfg.results}`"],
                    ["report built", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")]]
            lines.append(md_table(["", ""], rows) + "\n")
            if prov["versions"]:
                lines.append("Package versions: " + ", ".join(
                    f"{k} {' / '.join(v)}" for k, v in sorted(prov["versions"].items())) + ".\n")
            lines += self.verify_lines()
            srows = []
            for name in TABLES:
                s = prov["stages"].get(name)
                if name not in prov["stages"]:
                    srows.append([name, "not run", "–", "–"])
                elif s is None:
                    srows.append([name, "?", "no timestamps", "–"])
                else:
                    srows.append([name, str(s["runs"]), f"{s['run_seconds'] / 60:.1f}", f"{s['span_seconds'] / 60:.1f}"])
            lines.append("Wall time per stage, from the runs' `started`/`finished` columns (minutes; *sum* adds the "
                         "runs' durations, *span* is first start to last finish):\n")
            lines.append(md_table(["stage", "runs", "sum of runs (min)", "span (min)"], srows) + "\n")
            ov = prov.get("overall")
            if ov is not None:
                timed = {k: v for k, v in prov["stages"].items() if v}
                top = max(timed.items(), key=lambda kv: kv[1]["run_seconds"])
                goal = ""
                if self.cfg.tier == "tiny":
                    goal = (" — " + ("within" if ov["span_seconds"] <= 30 * 60 else "over")
                            + " the 30-minute goal of the tiny tier")
                total_run = sum(v["run_seconds"] for v in timed.values())
                lines.append(f"All runs together: first start {ov['first_start']}, last finish {ov['last_finish']}: "
                             f"**{ov['span_seconds'] / 60:.1f} min** (the reproduction's wall time without data "
                             f"preparation, table collection and workflow overhead, when all runs came from one "
                             f"invocation; runs reused from earlier invocations stretch it){goal}; the runs' "
                             f"durations add up to {total_run / 60:.1f} min; the largest stage is "
                             f"`{top[0]}` ({top[1]['run_seconds'] / 60:.1f} min of run time).\n")
        if self.cfg.wall_times:
            wt = read_wall_times(self.cfg.wall_times)
            total = wt.pop("total", None)
            lines.append(f"Measured wall time of the reproduction (`{self.cfg.wall_times}`):\n")
            lines.append(md_table(["stage", "wall time (min)"],
                                  [[k, f"{v / 60:.1f}"] for k, v in sorted(wt.items(), key=lambda kv: -kv[1])]
                                  + ([["**total**", f"**{total / 60:.1f}**"]] if total is not None else [])) + "\n")
            if total is not None and self.cfg.tier == "tiny":
                top = max(wt.items(), key=lambda kv: kv[1]) if wt else None
                verdict = ("within" if total <= 30 * 60 else "over") + " the 30-minute goal for the tiny tier"
                lines.append(f"Whole tiny reproduction: {total / 60:.1f} min, {verdict}"
                             + (f"; the largest stage is `{top[0]}` ({top[1] / 60:.1f} min)." if top else ".") + "\n")
            note = wall_times_note(self.cfg.wall_times)
            if note:
                lines.append(note.strip() + "\n")
        return "\n".join(lines)

    def verify_lines(self) -> list[str]:
        """The recorded ``make verify`` comparisons (results/<tier>/verify/*.csv): the spread of the same seed. Each row
        names the committed table it was compared with (the latest of its day), which need not be this report's."""
        files = sorted((Path(self.cfg.results).resolve().parent / "verify").glob("*.csv"))
        if not files:
            return ["Reproducibility: no `make verify` comparison recorded for this tier yet (it re-runs the nano "
                    "stage from scratch and records each metric's difference from the committed table).\n"]
        rows = []
        for f in files:
            d = pd.read_csv(f)
            c = d[d["compared"].astype(bool)]
            acc = c[(c["method"] == "base") & (c["dataset"] == "arith_test") & (c["metric"] == "acc_greedy")]
            loss = c[c["metric"] == "sft_loss_final"]
            has_against = "against_commit" in d and d["against_commit"].notna().any()
            against = str(d["against_commit"].dropna().iloc[0]) if has_against else ""
            rows.append([str(d["verified"].iloc[0])[:16].replace("T", " "), str(d["cpu"].iloc[0]),
                         str(d["threads"].iloc[0]), f"`{d['commit'].iloc[0]}`", f"`{against}`" if against else "–",
                         f"{int((c['diff'] == 0).sum())} / {len(c)}", f"{c['diff'].abs().max():.3g}",
                         "–" if acc.empty else f"{100 * acc['diff'].iloc[0]:+.1f}",
                         "–" if loss.empty else f"{100 * loss['rel_diff'].iloc[0]:+.1f}%"])
        return ["Reproducibility, measured by `make verify` (the nano stage re-run from scratch on the machine "
                "named, compared metric by metric with the committed `nano` table; files under "
                f"`{shown_path(files[0].parent)}`):\n",
                md_table(["verified (UTC)", "CPU", "threads", "fresh run's commit",
                          "compared with the `nano` table of commit", "identical metrics",
                          "largest abs diff", "base acc_greedy diff (pp)", "SFT loss diff"], rows) + "\n",
                "Bit-identical holds for the same commit, config, package versions, CPU model and thread count. On "
                "another CPU floating point rounds differently: for the previous testbed a from-scratch nano model "
                "on a second 2-core machine moved greedy accuracy by 0.2 pp and the SFT loss by 5% (issue 16), and "
                "every later stage inherits such a shift.\n"]
