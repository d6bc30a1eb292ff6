"""The protocol a model family implements, and the small types it shares with the stages.

A family is one object (`Family` subclass, registered in `stages.families`) that owns everything
specific to one kind of model: its config sections, the data its training and evaluation read
(as named inputs: the Snakemake rules and the CLIs pass them as `--<role> PATH...`), the
training task, the evaluation and the files it writes, prediction from user images, and its
part of the HTML report. The generic stages (`stages.train`, `stages.eval`, `stages.predict`,
`stages.report`) and the rules (`workflow/rules/models.smk`) only ever talk to this protocol.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..model_spec import NoOptions, Paper

if TYPE_CHECKING:  # imported lazily at run time: rules import families without torch
    import torch

    from ..model_spec import ModelSpec
    from ..training.task import TrainingTask


@dataclass(frozen=True)
class OutputFile:
    """One file (or folder) an evaluation writes under `results/eval/<model>/`.

    role: the key the report and the rules use; name: the path relative to the model's folder;
    required: the report refuses to build without it; directory: a folder of files (qualitative
    PNGs); report: (category, caption file under workflow/report/) for `snakemake --report`."""

    role: str
    name: str
    required: bool = True
    directory: bool = False
    report: tuple[str, str] | None = None


@dataclass(frozen=True)
class DataLayout:
    """What a family needs to know of the workflow to name its input files: the results folder,
    the whole config, and the scene shard paths of a dataset's split."""

    results: str
    config: Mapping[str, Any]
    split_shards: Any  # (dataset, split) -> list[str]


@dataclass(frozen=True)
class EvalOptions:
    """Options every evaluation takes: qualitative images to write, batch size, a limit on the
    test items (tests), the torch device and a seed for anything random."""

    qualitative: int = 8
    batch_size: int = 8
    limit: int | None = None
    seed: int = 0


@dataclass
class Prediction:
    """A reconstruction from user input: a trimesh mesh in the family's output frame, and lines
    to print (the predicted camera, ...)."""

    mesh: Any
    notes: list[str] = field(default_factory=list)


class Family(abc.ABC):
    """Base class of the family objects; subclasses set the class attributes and implement the
    methods that raise here. See the README's "Adding a model family"."""

    name: str = ""  # the `family:` value of model files
    title: str = ""  # as printed in the report ("CoReNet")
    network: type = NoOptions  # scale.<scale>.network
    train_options: type = NoOptions  # the family's keys in scale.<scale>.train
    evaluation: type = NoOptions  # eval
    paper: type = Paper  # paper
    default_task: str = "fg_bg"
    default_dataset: str = "single"
    train_inputs: tuple[str, ...] = ()  # roles of the training data (CLI: --<role> PATH...)
    eval_inputs: tuple[str, ...] = ()  # roles of the evaluation data
    outputs: tuple[OutputFile, ...] = ()  # what the evaluation writes (summary.json included)
    statistics: tuple[str, ...] = ("iou",)  # per-batch training statistics, columns of metrics.csv
    eval_batch_size: int = 8  # test items per forward pass unless --batch-size says otherwise
    headline: str = "mean IoU"  # what summary.json's mean_iou measures for this family

    # Configuration -------------------------------------------------------------------------
    def check_spec(self, spec: "ModelSpec") -> None:
        """Cross-section checks of a parsed spec; raise ValueError with the reason."""

    # Workflow -------------------------------------------------------------------------------
    @abc.abstractmethod
    def input_files(self, spec: "ModelSpec", stage: str, layout: DataLayout) -> dict[str, list[str]]:
        """The files of each input role for `stage` ("train" or "eval"), for the rules."""

    # Training -------------------------------------------------------------------------------
    @abc.abstractmethod
    def build_model(self, spec: "ModelSpec") -> "torch.nn.Module":
        """The network `spec` describes, freshly initialised (from torch's current seed)."""

    @abc.abstractmethod
    def training_task(self, spec: "ModelSpec", inputs: Mapping[str, Sequence[str]], seed: int,
                      limit: int | None) -> "TrainingTask":
        """The training task over the input files by role; `limit`: only the first N examples."""

    # Evaluation -----------------------------------------------------------------------------
    @abc.abstractmethod
    def evaluate(self, spec: "ModelSpec", model, payload: dict, inputs: Mapping[str, Sequence[str]],
                 out_dir: Path, options: EvalOptions, device) -> dict:
        """Write the family's `outputs` under `out_dir`; return the summary (also written)."""

    def describe_summary(self, summary: dict) -> str:
        """One line for the terminal after an evaluation."""
        return f"{summary['model']}: {self.headline} {summary['mean_iou']:.3f} (baseline {summary['baseline_mean_iou']:.3f})"

    # Prediction -----------------------------------------------------------------------------
    def add_predict_arguments(self, parser) -> None:
        """Options of `python -m stages.predict` that only this family understands."""

    @abc.abstractmethod
    def predict(self, spec: "ModelSpec", model, args, device) -> Prediction:
        """Reconstruct from the user's input named in `args` (`--image`, ...) with a loaded model."""

    # Report ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def read_report(self, files: dict[str, Path]):
        """The family's own evaluation files (by role, from `output_paths`) read and checked for
        the report; raise stages.report.inputs.ReportInputError naming a file that breaks the
        contract."""

    @abc.abstractmethod
    def report_section(self, evaluation) -> str:
        """The HTML of the family's metrics part of a model's report section."""

    # Derived --------------------------------------------------------------------------------
    def output_paths(self, results: str | Path, model: str) -> dict[str, Path]:
        """Every output file of `model`'s evaluation by role, plus its training log ("training")."""
        results = Path(results)
        files = {o.role: results / "eval" / model / o.name for o in self.outputs}
        files["training"] = results / "models" / model / "metrics.csv"
        return files

    def required_outputs(self, results: str | Path, model: str) -> dict[str, Path]:
        required = {o.role for o in self.outputs if o.required and not o.directory} | {"training"}
        return {k: v for k, v in self.output_paths(results, model).items() if k in required}
