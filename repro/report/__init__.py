"""Generated reports: our numbers next to the papers', seed statistics, figures and provenance.

    python -m repro.report.build --tier tiny --results results/tiny/latest --out reports/tiny/<version>

Modules: ``tables`` (read and validate the long-format result tables, provenance, wall times),
``figures`` (matplotlib PNGs), ``format`` (how numbers are printed), ``build`` (the entry point),
``templates/`` (the "what differs from the paper" notes, the HTML page, Snakemake report captions).
The papers' published numbers live in config/paper_tables.yaml.
"""
