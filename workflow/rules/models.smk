# Model rules: one training rule and one evaluation rule over a {model} wildcard, for every
# config/models/<model>.yaml of every family (stages.families). Each model file is read and
# checked here, when the DAG is built, so a bad file fails before any job runs. A model's data
# (the family's input roles) and its evaluation's outputs come from its family; the evaluation
# rule is written once and instantiated per family because its output files differ. The targets
# `train_<model>` and `eval_<model>` (snakemake eval_h7) are aliases of those rules' outputs (rules
# without a command, so Snakemake runs them locally, never as cluster jobs).
# The helpers (model specs, their families, input and output files) are in common.smk.


wildcard_constraints:
    model="|".join(model_names()) or "no-model",


rule train:
    input:
        unpack(model_inputs("train")),
        config=f"{MODEL_CONFIGS}/{{model}}.yaml",
    output:
        model=f"{RESULTS}/models/{{model}}/model.pt",
        metrics=report(
            f"{RESULTS}/models/{{model}}/metrics.csv",
            category="Training",
            subcategory="{model}",
            caption="../report/training_curve.rst",
        ),
    log:
        f"{RESULTS}/logs/train/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{model}}.tsv"
    wildcard_constraints:
        model=TRAINED_MODELS,
    conda:
        "../../envs/gpu.yaml"
    container:
        CUDA_IMAGE
    threads: threads_for("train")
    resources:
        mem_mb=mem_for("train"),
        gpu=config["models"].get("gpus", 0),
    params:
        scale=config["models"]["scale"],
        out_dir=lambda wc, output: str(Path(output.model).parent),
        data=data_options("train"),
        device=device(),
        overrides=overrides(),
    shell:
        launcher("stages.train")
        + " --model-config {input.config} --scale {params.scale} {params.data}"
        " --out-dir {params.out_dir} --device {params.device} --threads {threads}"
        " {params.overrides} 2> {log}"


for _family in families():

    rule:
        name:
            f"evaluate_{_family.name}"
        input:
            unpack(model_inputs("eval")),
            model=f"{RESULTS}/models/{{model}}/model.pt",
        output:
            **_family_outputs(_family),
        log:
            f"{RESULTS}/logs/eval/{{model}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/eval/{{model}}.tsv"
        wildcard_constraints:
            model="|".join(m for m in model_names() if MODEL_FAMILIES[m] == _family.name)
            or "no-model",
        conda:
            "../../envs/gpu.yaml"
        container:
            CUDA_IMAGE
        threads: threads_for("eval")
        resources:
            mem_mb=mem_for("eval"),
            gpu=min(1, config["models"].get("gpus", 0)),
        params:
            out_dir=lambda wc, output: str(Path(output.summary).parent),
            data=data_options("eval"),
            device=device(),
            qualitative=config["models"].get("qualitative", 8),
        shell:
            "python -m stages.eval --model {input.model} {params.data}"
            " --out-dir {params.out_dir} --qualitative {params.qualitative}"
            " --device {params.device} --threads {threads} 2> {log}"


for _model in model_names():

    rule:
        name:
            f"train_{_model}"
        input:
            f"{RESULTS}/models/{_model}/model.pt",
            f"{RESULTS}/models/{_model}/metrics.csv",

    rule:
        name:
            f"eval_{_model}"
        input:
            eval_outputs(_model),
