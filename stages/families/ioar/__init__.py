"""IOAR (Qiu, Xu, Zheng, NeurIPS 2023; YorkQiu/InnerOuterAwareReconstruction = VoRTX plus an
inner/surface/outer occupancy branch): posed RGB video -> a TSDF -> the scene mesh. Trained on
crops of the fused ground-truth TSDF (`stages.fuse_tsdf`) with the frames that see them
(`stages.convert_scannet`), evaluated on whole test scans with the VoRTX/IOAR and
TransformerFusion mesh protocols and the 2D depth metrics (`stages.scene_metrics`).

This module only declares the family (cheap to import); the work lives in `spec`, `data`,
`task`, `inference`, `evaluate`, `predict` and `report`.
"""

from __future__ import annotations

from ..base import DataLayout, Family, OutputFile
from .spec import IOAREval, IOARNetwork, IOARPaper, IOARTrainOptions


class IOARFamily(Family):
    name = "ioar"
    title = "IOAR"
    network = IOARNetwork
    train_options = IOARTrainOptions
    evaluation = IOAREval
    paper = IOARPaper
    default_task = "scene_tsdf"
    default_dataset = "scannet"
    train_inputs = ("frames", "tsdf")
    eval_inputs = ("frames", "scans", "tsdf", "gt_meshes")
    outputs = (
        OutputFile("summary", "summary.json"),
        OutputFile("mesh_metrics", "mesh_metrics.csv"),
        OutputFile("depth_metrics", "depth_metrics.csv"),
        OutputFile("meshes", "meshes", directory=True),
        OutputFile("qualitative", "qualitative", directory=True, report=("Qualitative", "qualitative.rst")),
    )
    statistics = ("occ_acc", "tsdf_l1", "proj_occ_bce")
    eval_batch_size = 1
    headline = "F-score (VoRTX/IOAR protocol, 5 cm)"

    def check_spec(self, spec) -> None:
        if spec.train_options.freeze_trunk and not spec.network.backbone_weights:
            raise ValueError(f"scale.{spec.scale}.train.freeze_trunk: a frozen trunk needs backbone_weights "
                             "(the original freezes its ImageNet MNASNet; a random one would learn nothing)")
        fine = spec.network.voxel_sizes[2]
        if fine < 0.04 - 1e-9 or abs(fine / 0.04 - round(fine / 0.04)) > 1e-6 or round(fine / 0.04) not in (1, 2, 4):
            raise ValueError(f"scale.{spec.scale}.network.voxel_sizes: the fine level must be one of the fused "
                             f"TSDF's 0.04, 0.08 or 0.16 m, got {fine}")

    def input_files(self, spec, stage: str, layout: DataLayout) -> dict[str, list[str]]:
        """The ScanNet tables of rules convert_scannet and fuse_tsdf (workflow/rules/scannet.smk):
        training reads the train split's FRAMES and TSDF shards; evaluation the test split's,
        the SCANS table (ground-truth meshes) and the fused test meshes (the floor baseline)."""
        config = layout.config["scannet"]
        root = f"{layout.results}/scannet"
        split = "train" if stage == "train" else "test"
        size = config["shard_size"]
        count = config["scenes"][split]
        shards = range(-(-count // size)) if count else range(0)
        files = {
            "frames": [f"{root}/frames/{split}/shard-{s:05d}.parquet" for s in shards],
            "tsdf": [f"{root}/tsdf/volumes/{split}/shard-{s:05d}.parquet" for s in shards],
        }
        if stage != "train":
            files["scans"] = [f"{root}/scans.parquet"]
            files["gt_meshes"] = [f"{root}/tsdf/meshes/{split}/shard-{s:05d}" for s in shards]
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
        return (f"{summary['model']}: F-score {summary['mean_iou']:.3f} (VoRTX/IOAR protocol), "
                f"{summary['tf_fscore']:.3f} (TransformerFusion); floor-plane baseline "
                f"{summary['baseline_mean_iou']:.3f} / {summary['baseline_tf_fscore']:.3f}; "
                f"{summary['test_scenes']} test scans")

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


IOAR = IOARFamily()
