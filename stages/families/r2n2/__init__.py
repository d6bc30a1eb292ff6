"""3D-R2N2 (Choy et al., ECCV 2016; chrischoy/3D-R2N2), Res3D-GRU-3: 1..5 views -> a 32^3
occupancy grid, trained and evaluated on the multi-view table (ShapeNetRendering +
ShapeNetVox32 layouts, `stages.r2n2_views`).

This module only declares the family (cheap to import: the workflow reads it when it builds the
DAG); the work lives in `spec`, `data`, `task`, `metrics`, `evaluate`, `predict` and `report`;
`pix3d` is the CLI of the Pix3D real-photograph evaluation. Two variants share the family:
`r2n2` (the released code) and `r2n2_paddle` (the PaddlePaddle port: BCE on a sigmoid output,
Pix2Vox's augmentation), told apart only by their model files' keys.
"""

from __future__ import annotations

from ...model_spec import ModelSpec
from ...models.configs import R2N2Config
from ..base import DataLayout, Family, OutputFile
from .spec import R2N2Eval, R2N2Paper, R2N2TrainOptions


class R2N2Family(Family):
    name = "r2n2"
    title = "3D-R2N2"
    network = R2N2Config
    train_options = R2N2TrainOptions
    evaluation = R2N2Eval
    paper = R2N2Paper
    default_task = "fg_bg"
    default_dataset = "r2n2"
    train_inputs = ("views",)
    eval_inputs = ("views",)
    outputs = (
        OutputFile("summary", "summary.json"),
        OutputFile("views", "iou_by_views.csv", report=("Evaluation", "voxel_metrics.rst")),
        # Not required by the report: results of evaluations from before it existed still read.
        OutputFile("per_class", "per_class.csv", required=False),
        OutputFile("qualitative", "qualitative", directory=True, report=("Qualitative", "qualitative.rst")),
    )
    statistics = ("iou",)
    eval_batch_size = 16
    # The CLI of the Pix3D real-photograph evaluation (rules/pix3d.smk runs it for every model of
    # a family that names one).
    pix3d_module = "stages.families.r2n2.pix3d"

    def check_spec(self, spec: ModelSpec) -> None:
        net = spec.network
        if spec.resolution is not None and net.resolution != spec.resolution:
            raise ValueError(f"scale.{spec.scale}.network.resolution {net.resolution} differs from "
                             f"scale.{spec.scale}.resolution {spec.resolution}")
        if net.input_size != spec.input_size:
            raise ValueError(f"scale.{spec.scale}.network.input_size {net.input_size} differs from "
                             f"scale.{spec.scale}.input_size {spec.input_size}")
        loss, classes = spec.train_options.loss, net.num_classes
        if (loss == "bce") != (classes == 1):
            raise ValueError(f"train.loss {loss} needs network.num_classes {1 if loss == 'bce' else 2}, got {classes} "
                             f"(scale.{spec.scale})")
        if max(spec.eval.views) > spec.train_options.max_views:
            raise ValueError(f"eval.views go up to {max(spec.eval.views)} but training sees at most "
                             f"{spec.train_options.max_views} views (scale.{spec.scale}.train.max_views)")

    def input_files(self, spec, stage: str, layout: DataLayout) -> dict[str, list[str]]:
        """The view table built by rules render_views and r2n2_views. A model meant for one
        split (train.split) refuses a workflow configured with another (config r2n2.split)."""
        wanted, configured = spec.train_options.split, layout.config["r2n2"]["split"]
        if wanted != "any" and wanted != configured:
            raise ValueError(f"model {spec.name} (scale {spec.scale}) trains on the {wanted} split, but the config "
                             f"has r2n2.split: {configured} (see config/README.md, r2n2.split and r2n2.split_file)")
        return {"views": [f"{layout.results}/r2n2/views.parquet"]}

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
        views = ", ".join(f"{n}: {v:.3f}" for n, v in summary["mean_iou_by_views"].items())
        return (f"{summary['model']} mean IoU at {summary['threshold']} by views ({views}); "
                f"baseline {summary['baseline_mean_iou']:.3f}")

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


R2N2 = R2N2Family()
