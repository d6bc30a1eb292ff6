# The HTML result report: one self-contained page of every evaluated model (config models.run),
# the datasets, per-rule runtime and memory, and the run's provenance. The list of files each
# model must have produced lives in stages.report.inputs, shared with the CLI's own check; it
# is the model's family's (MODEL_FAMILIES: model -> family, from rules/models.smk).
import os

from stages.report.inputs import report_inputs


localrules:
    report,


rule report:
    input:
        evaluations=report_inputs(
            RESULTS, {m: MODEL_FAMILIES.get(m) for m in config.get("models", {}).get("run", [])}
        ),
        pix3d=pix3d_evaluations(),
        meshes=mesh_shards(),
        quarantine=mesh_shards("quarantine"),
        scenes=[
            shard for dataset in config["scenes"]["datasets"] for shard in scene_shards(dataset)
        ],
    output:
        report(
            f"{RESULTS}/report/index.html",
            category="Report",
            caption="../report/index.rst",
        ),
    log:
        f"{RESULTS}/logs/report/report.log",
    conda:
        "../../envs/report.yaml"
    container:
        CPU_IMAGE
    params:
        # results/report/index.html -> results
        results=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),
        models=config.get("models", {}).get("run", []),
        configs=workflow.configfiles,
    shell:
        "python -m stages.report --results {params.results:q} --config {params.configs:q}"
        " --models {params.models:q} --out {output:q} 2> {log:q}"
