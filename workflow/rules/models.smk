# Model rules: one training rule and one evaluation rule over a {model} wildcard, for every
# config/models/<model>.yaml of every family (stages.families). Each model file is read and
# checked here, when the DAG is built, so a bad file fails before any job runs. A model's data
# (the family's input roles) and its evaluation's outputs come from its family; the evaluation
# rule is written once and instantiated per family because its output files differ. The targets
# `train_<model>` and `eval_<model>` (snakemake eval_h7) are aliases of those rules' outputs (rules
# without a command, so Snakemake runs them locally, never as cluster jobs).
from stages.families import DataLayout, families, family_named, input_options
from stages.model_config import load_model_spec


def _model_specs():
    scale = config["models"]["scale"]
    return {p.stem: load_model_spec(p, scale) for p in sorted(Path(MODEL_CONFIGS).glob("*.yaml"))}


MODEL_SPECS = _model_specs()
MODEL_FAMILIES = {name: spec.family for name, spec in MODEL_SPECS.items()}
LAYOUT = DataLayout(results=RESULTS, config=config, split_shards=split_shards)


def model_names():
    return sorted(MODEL_SPECS)


def model_family(name):
    if name not in MODEL_SPECS:
        raise ValueError(
            f"model {name!r} has no config file {MODEL_CONFIGS}/{name}.yaml (known: {', '.join(model_names())})"
        )
    return family_named(MODEL_FAMILIES[name])


def model_inputs(stage):
    """Input function: the model's data files by role for `stage` (train or eval)."""

    def inputs(wildcards):
        spec = MODEL_SPECS[wildcards.model]
        return family_named(spec.family).input_files(spec, stage, LAYOUT)

    return inputs


def data_options(stage):
    """Params function: the family's `--<role> PATH...` options from the job's inputs."""

    def options(wildcards, input):
        family = model_family(wildcards.model)
        roles = family.train_inputs if stage == "train" else family.eval_inputs
        return input_options({role: input[role] for role in roles})

    return options


def eval_outputs(name):
    """Everything eval_<name> writes (files only) and the training log: the targets of `all`."""
    paths = model_family(name).output_paths(RESULTS, name)
    return [str(p) for role, p in paths.items() if role != "qualitative"]


def launcher(module):
    """torchrun with one process per GPU (or per CPU process when models.processes > 1)."""
    if config["models"].get("gpus", 0) > 0:
        return f"torchrun --standalone --nproc-per-node={{resources.gpu}} -m {module}"
    processes = config["models"].get("processes", 1)
    if processes > 1:
        return f"torchrun --standalone --nproc-per-node={processes} -m {module}"
    return f"python -m {module}"


def device():
    return "cuda" if config["models"].get("gpus", 0) > 0 else "auto"


def overrides():
    """--steps/--batch-size when the config overrides every model's (smoke runs, tests)."""
    options = []
    for key in ("steps", "batch_size"):
        if config["models"].get(key):
            options.append(f"--{key.replace('_', '-')} {config['models'][key]}")
    return " ".join(options)


def _family_outputs(family):
    """The evaluation rule's outputs: the family's list, with report() where it asks for it."""
    outputs = {}
    for out in family.outputs:
        path = f"{RESULTS}/eval/{{model}}/{out.name}"
        if out.directory:
            path = directory(path)
        if out.report is not None:
            category, caption = out.report
            extra = {"patterns": ["{name}.png"]} if out.directory else {}
            path = report(path, category=category, subcategory="{model}", caption=f"../report/{caption}", **extra)
        outputs[out.role] = path
    return outputs


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
        conda:
            "../../envs/gpu.yaml"
        container:
            CUDA_IMAGE
        threads: threads_for("eval")
        resources:
            mem_mb=mem_for("eval"),
            gpu=min(1, config["models"].get("gpus", 0)),
        wildcard_constraints:
            model="|".join(m for m in model_names() if MODEL_FAMILIES[m] == _family.name)
            or "no-model",
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

