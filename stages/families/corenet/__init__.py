"""CoReNet (Popov, Bauszat, Ferrari, ECCV 2020; google-research/corenet): one image -> a voxel
grid of the scene's objects (h5, h7, y1: foreground/background; m7, m9: semantic), trained and
evaluated on the scenes, renders and voxels tables.

This module only declares the family (cheap to import: the workflow reads it when it builds the
DAG); the work lives in `spec` (config sections), `task` (network, batches, loss), `evaluate`,
`predict` and `report`, imported when needed.
"""

from __future__ import annotations

from ..base import DataLayout, Family, OutputFile
from .spec import TASKS, CorenetNetwork, CorenetTrainOptions


class CorenetFamily(Family):
    name = "corenet"
    title = "CoReNet"
    network = CorenetNetwork
    train_options = CorenetTrainOptions
    default_task = "fg_bg"
    default_dataset = "single"
    train_inputs = ("scenes", "renders", "voxels")
    eval_inputs = ("scenes", "renders", "voxels", "train_scenes", "train_voxels")
    outputs = (
        OutputFile("summary", "summary.json"),
        OutputFile("metrics", "voxel_metrics.csv", report=("Evaluation", "voxel_metrics.rst")),
        OutputFile("baseline", "baseline_metrics.csv"),
        OutputFile("scenes", "scenes.parquet", required=False),
        OutputFile("qualitative", "qualitative", directory=True, report=("Qualitative", "qualitative.rst")),
    )
    statistics = ("iou",)
    eval_batch_size = 8

    def check_spec(self, spec) -> None:
        if spec.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {spec.task!r}")
        if spec.resolution is None:
            raise ValueError(f"scale.{spec.scale}.resolution is required for a CoReNet model")
        from .spec import network_config

        network_config(spec)  # the decoder's widths must fit the resolution

    def input_files(self, spec, stage: str, layout: DataLayout) -> dict[str, list[str]]:
        """Scene shards of the model's dataset and the renders (its realism) and voxels (its
        evaluation resolution) that mirror them; evaluation adds the training split for the
        constant-shape baseline."""
        datasets = layout.config["scenes"]["datasets"]
        if spec.dataset not in datasets:
            raise ValueError(f"model {spec.name} trains on dataset {spec.dataset!r}, which config "
                             f"scenes.datasets does not define (it has {sorted(datasets)})")
        results = layout.results

        def shards(split: str, table: str) -> list[str]:
            scenes = layout.split_shards(spec.dataset, split)
            if table == "scenes":
                return scenes
            level = spec.realism if table == "renders" else spec.gt_resolution
            return [p.replace(f"{results}/scenes/", f"{results}/{table}/{level}/") for p in scenes]

        split = "train" if stage == "train" else "test"
        files = {table: shards(split, table) for table in ("scenes", "renders", "voxels")}
        if stage == "eval":
            files["train_scenes"] = shards("train", "scenes")
            files["train_voxels"] = shards("train", "voxels")
        return files

    def build_model(self, spec):
        from .task import build_model

        return build_model(spec)

    def training_task(self, spec, inputs, seed, limit):
        from .task import training_task

        return training_task(spec, inputs, seed, limit)

    def evaluate(self, spec, model, payload, inputs, out_dir, options, device):
        from .evaluate import evaluate

        return evaluate(spec, model, payload, inputs, out_dir, options, device)

    def describe_summary(self, summary: dict) -> str:
        return (f"{summary['model']}: mean IoU {summary['mean_iou']:.3f} (baseline "
                f"{summary['baseline_mean_iou']:.3f}), global IoU {summary['global_iou']:.3f}")

    def add_predict_arguments(self, parser) -> None:
        from .predict import add_arguments

        add_arguments(parser)

    def predict(self, spec, model, args, device):
        from .predict import predict

        return predict(spec, model, args, device)

    def read_report(self, files):
        from .report import read_report

        return read_report(files)

    def report_section(self, evaluation) -> str:
        from .report import report_section

        return report_section(evaluation)


CORENET = CorenetFamily()
