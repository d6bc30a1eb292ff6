"""UMR (Li et al., "Self-supervised Single-view 3D Reconstruction via Semantic Consistency",
ECCV 2020; NVlabs/UMR on akanazawa/cmr and ShichenLiu/SoftRas): one image of a bird -> a
symmetric textured mesh, a camera, and keypoint transfer, trained from images, masks and SCOPS
part maps only (no 3D, no keypoints), on the CUB tables of `stages.import_cub`.

This module only declares the family (cheap to import: the workflow reads it when it builds the
DAG); the work lives in `spec`, `data`, `model`, `task`, `metrics`, `evaluate`, `views`,
`predict` and `report`.
"""

from __future__ import annotations

from ...model_spec import ModelSpec
from ..base import DataLayout, Family, OutputFile
from .spec import UMREval, UMRNetwork, UMRPaper, UMRTrainOptions


class UMRFamily(Family):
    name = "umr"
    title = "UMR"
    network = UMRNetwork
    train_options = UMRTrainOptions
    evaluation = UMREval
    paper = UMRPaper
    default_task = "mesh"
    default_dataset = "cub"
    train_inputs = ("train",)  # results/cub/train.parquet (rule import_cub)
    eval_inputs = ("test", "train")  # the test table; the train table for the mean-camera baseline
    outputs = (
        OutputFile("summary", "summary.json"),
        OutputFile("metrics", "umr_metrics.csv", report=("Evaluation", "umr_metrics.rst")),
        OutputFile("keypoints", "pck_by_keypoint.csv"),
        OutputFile("images", "images.parquet"),
        OutputFile("qualitative", "qualitative", directory=True, report=("Qualitative", "umr_qualitative.rst")),
    )
    statistics = ("mask_iou", "texture_l1", "part_loss", "stage")
    eval_batch_size = 16
    headline = "soft mask IoU"

    def check_spec(self, spec: ModelSpec) -> None:
        net, opts = spec.network, spec.train_options
        if net.image_size != spec.input_size:
            raise ValueError(f"scale.{spec.scale}.network.image_size {net.image_size} differs from "
                             f"scale.{spec.scale}.input_size {spec.input_size}")
        if opts.stage1_steps > spec.train.steps:
            raise ValueError(f"scale.{spec.scale}.train.stage1_steps {opts.stage1_steps} exceeds steps {spec.train.steps}")
        if spec.scale not in spec.eval.pairs:
            raise ValueError(f"eval.pairs has no entry for scale {spec.scale!r}")

    def input_files(self, spec, stage: str, layout: DataLayout) -> dict[str, list[str]]:
        """The CUB tables written by rule import_cub (workflow/rules/cub.smk)."""
        train = [f"{layout.results}/cub/train.parquet"]
        if stage == "train":
            return {"train": train}
        return {"test": [f"{layout.results}/cub/test.parquet"], "train": train}

    def build_model(self, spec):
        from .model import build_model

        return build_model(spec)

    def training_task(self, spec, inputs, seed, limit):
        from .task import training_task

        return training_task(spec, inputs, seed, limit)

    def evaluate(self, spec, model, payload, inputs, out_dir, options, device):
        from .evaluate import evaluate

        return evaluate(spec, model, payload, inputs, out_dir, options, device)

    def describe_summary(self, summary: dict) -> str:
        pck = ", ".join(f"{k} {v:.3f}" for k, v in summary["pck_flow"].items())
        return (f"{summary['model']}: soft mask IoU {summary['mean_iou']:.3f} (hard {summary['hard_mask_iou']:.3f}); "
                f"PCK texture flow {pck}; best baseline IoU {summary['baseline_mean_iou']:.3f}")

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


UMR = UMRFamily()
