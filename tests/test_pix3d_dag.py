"""Pix3D in the DAG (workflow/rules/pix3d.smk), by dry runs: without pix3d.root no Pix3D rule
runs; with it, `all` imports the release and scores every 3D-R2N2-family model of models.run on
it, and the report waits for those tables (it shows them next to the ShapeNet figures)."""

from __future__ import annotations

import re

from snakemake_runs import job_counts
from test_corenet_release_dag import dry_run


def report_inputs(stdout: str) -> str:
    block = stdout[re.search(r"^(local)?rule report:", stdout, re.M).start():]
    return block[: block.index("output:")]


def test_pix3d_rules_run_only_with_a_root_and_feed_the_report(tmp_path):
    without = job_counts(dry_run(tmp_path / "a", {"models": {"run": ["h5", "r2n2"]}}).stdout)
    assert "import_pix3d" not in without and "evaluate_r2n2_pix3d" not in without

    root = tmp_path / "pix3d"
    root.mkdir()
    (root / "pix3d.json").write_text("[]")
    result = dry_run(tmp_path / "b", {"models": {"run": ["h5", "r2n2"]}, "pix3d": {"root": str(root)}})
    counts = job_counts(result.stdout)
    assert counts["import_pix3d"] == 1
    assert counts["evaluate_r2n2_pix3d"] == 1  # r2n2 only: h5's family has no Pix3D evaluation
    assert re.search(r"results/eval/r2n2/pix3d_iou\.csv", report_inputs(result.stdout))
    assert "results/eval/h5/pix3d_iou.csv" not in result.stdout
