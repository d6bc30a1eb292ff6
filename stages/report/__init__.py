"""report: one self-contained HTML page of a run's results (`python -m stages.report --help`).

Modules, one idea each:

- inputs: which files a model's evaluation must have produced (shared with the Snakemake rule)
- evaluations: a model's evaluation and training outputs, read into dataclasses
- datasets: counts per class and split of the pipeline's tables, quarantined meshes
- benchmarks: per-rule runtime and memory from Snakemake's `benchmark:` files
- provenance: config, git commit, package versions, host and GPU of the run
- references: the papers' numbers on real ShapeNet
- plots: hand-written inline SVG plots (no plotting library)
- markup: HTML building blocks (escaped text, sortable tables, the page's CSS and script)
- model_section: one model's section (metrics tables, per-scene IoU, qualitative grids)
- run_sections: the sections about the run (datasets, runtime and memory, provenance)
- page: the page assembly (overview, training curves, table of contents)
- build: collect everything, render, write atomically

Importing this package is cheap (the Snakemake rule imports `stages.report.inputs`).
"""
