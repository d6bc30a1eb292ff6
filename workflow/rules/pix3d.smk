# Pix3D (Sun et al., CVPR 2018), real photographs for the 3D-R2N2 family: active when the config
# names the extracted release (pix3d.root). import_pix3d turns it into results/pix3d/pix3d.parquet
# (stages/import_pix3d.py); evaluate_r2n2_pix3d scores a trained model on it with one view (the
# family's pix3d_module: python -m stages.families.r2n2.pix3d) into
# results/eval/{model}/pix3d_iou.csv, which the report shows next to the ShapeNet test figures.
# Targets: eval_<model>_pix3d per such model (eval_r2n2_pix3d, eval_r2n2_paddle_pix3d).

if config.get("pix3d", {}).get("root"):

    rule import_pix3d:
        input:
            f"{config['pix3d']['root']}/pix3d.json",
        output:
            table=f"{RESULTS}/pix3d/pix3d.parquet",
            quarantine=f"{RESULTS}/pix3d/quarantine.parquet",
        log:
            f"{RESULTS}/logs/import_pix3d.log",
        benchmark:
            f"{RESULTS}/benchmarks/import_pix3d.tsv"
        conda:
            "../../envs/data.yaml"
        container:
            CPU_IMAGE
        threads: threads_for("import_pix3d")
        resources:
            mem_mb=mem_for("import_pix3d"),
        params:
            root=config["pix3d"]["root"],
            out_dir=lambda wc, output: str(Path(output.table).parent),
            backend=config["voxelize"]["backend"],
        shell:
            "python -m stages.import_pix3d --root {params.root:q} --out {params.out_dir:q}"
            " --backend {params.backend} --threads {threads} 2> {log}"

    rule evaluate_r2n2_pix3d:
        input:
            model=f"{RESULTS}/models/{{model}}/model.pt",
            table=rules.import_pix3d.output.table,
        output:
            iou=report(
                f"{RESULTS}/eval/{{model}}/pix3d_iou.csv",
                category="Evaluation",
                subcategory="{model}",
                caption="../report/voxel_metrics.rst",
            ),
        log:
            f"{RESULTS}/logs/eval/{{model}}_pix3d.log",
        benchmark:
            f"{RESULTS}/benchmarks/eval/{{model}}_pix3d.tsv"
        wildcard_constraints:
            model="|".join(PIX3D_MODELS) or "no-model",
        conda:
            "../../envs/gpu.yaml"
        container:
            CUDA_IMAGE
        threads: threads_for("eval")
        resources:
            mem_mb=mem_for("eval"),
            gpu=min(1, config["models"].get("gpus", 0)),
        params:
            out_dir=lambda wc, output: str(Path(output.iou).parent),
            device=device(),
            module=lambda wc: model_family(wc.model).pix3d_module,
        shell:
            "python -m {params.module} --model {input.model:q} --pix3d {input.table:q}"
            " --out-dir {params.out_dir:q} --device {params.device} --threads {threads} 2> {log}"

    for _model in PIX3D_MODELS:

        rule:
            name:
                f"eval_{_model}_pix3d"
            input:
                f"{RESULTS}/eval/{_model}/pix3d_iou.csv",
