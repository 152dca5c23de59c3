"""The spine shared by every stage: provenance, atomic writes, result tables, progress, CLI, config."""
