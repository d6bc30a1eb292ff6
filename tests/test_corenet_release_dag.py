"""CoReNet's released artefacts in the DAG (workflow/rules/corenet_release.smk), by dry runs:
source.corenet imports the release's scenes and renders instead of make_scenes + render (shards
from the dataset json's length), models.checkpoint imports a released network instead of training
it; and the pieces behind them (the importer's `released` mark and empty training log, the report's
label)."""

from __future__ import annotations

import json

import pandas as pd
import yaml

from snakemake_runs import REPO, job_counts, scratch_workdir, snakemake
from test_scenes import write_corenet_npz

# Scenes the fixture's dataset jsons list (the tiny config's counts differ: the json decides).
RELEASE = {
    "single": {"train": 9, "val": 2, "test": 5},
    "pairs": {"train": 3, "val": 1, "test": 2},
    "triplets": {"train": 2, "val": 1, "test": 1},
}
SHARD_SIZE = 4  # config/tiny.yaml


def write_release(root):
    """A release folder as extracted from the tars: <dataset>.<split>/dataset.json + .npz files."""
    for dataset, splits in RELEASE.items():
        for split, count in splits.items():
            folder = root / f"{dataset}.{split}"
            files = [f"{i:03x}/{i:03x}{dataset}{split}.npz" for i in range(count)]
            write_corenet_npz(folder / files[0], k=1 if dataset == "single" else 2)
            (folder / "dataset.json").write_text(json.dumps({"files": files}))
    return root


def dry_run(tmp_path, extra: dict, *targets: str, check: bool = True):
    tmp_path.mkdir(parents=True, exist_ok=True)
    work = scratch_workdir(tmp_path)
    (tmp_path / "extra.yaml").write_text(yaml.safe_dump(extra))
    return snakemake("-n", "-p", *targets, "--configfile", "config/tiny.yaml", str(tmp_path / "extra.yaml"),
                     cwd=work, check=check)


def shards(count: int) -> int:
    return -(-count // SHARD_SIZE)


def test_the_release_replaces_make_scenes_and_render(tmp_path):
    release = write_release(tmp_path / "corenet")
    result = dry_run(tmp_path, {"source": {"corenet": str(release)}, "models": {"run": ["h5"]}})
    counts = job_counts(result.stdout)
    tiny = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    per_dataset = {d: sum(shards(n) for n in splits.values()) for d, splits in RELEASE.items()}
    assert counts["import_corenet"] == sum(per_dataset.values())  # every dataset the config has
    assert "make_scenes" not in counts and "render" not in counts
    resolutions = tiny["voxelize"]["resolutions"]
    assert counts["voxelize"] == sum(per_dataset[d] * len(r) for d, r in resolutions.items())
    assert counts["train"] == counts["evaluate_corenet"] == 1
    # one job per shard of the json's list: both renders and the quarantine come with the scenes
    command = next(line for line in result.stdout.splitlines() if "--shard $((10#00002))" in line
                   and "single.train" in line)
    assert f"--dataset-json {release}/single.train/dataset.json --dataset single --split train" in command
    assert "--renders results/renders --quarantine results/scene_quarantine/single" in command
    assert "results/renders/high/single/train/shard-00002.parquet" in result.stdout


def test_the_json_named_per_dataset_is_read(tmp_path):
    release = write_release(tmp_path / "corenet")
    for split in ("train", "val"):
        (release / f"single.{split}" / "dataset.choy_classes.json").write_text(
            (release / f"single.{split}" / "dataset.json").read_text())
    (release / "single.test" / "dataset.choy_classes.json").write_text(json.dumps({"files": ["a/1.npz"]}))
    extra = {"source": {"corenet": str(release), "corenet_json": {"single": "dataset.choy_classes.json"}},
             "models": {"run": ["h5"]}}
    result = dry_run(tmp_path, extra)
    assert f"--dataset-json {release}/single.test/dataset.choy_classes.json" in result.stdout
    # single.test: one shard (the choy_classes list's one scene), not the two of dataset.json's five
    full = sum(shards(n) for splits in RELEASE.values() for n in splits.values())
    assert job_counts(result.stdout)["import_corenet"] == full - 1


def test_a_split_the_release_lacks_is_a_missing_input_not_our_scenes(tmp_path):
    release = write_release(tmp_path / "corenet")
    (release / "pairs.val" / "dataset.json").unlink()
    result = dry_run(tmp_path, {"source": {"corenet": str(release)}, "models": {"run": ["h5"]}}, check=False)
    assert result.returncode != 0
    assert f"{release}/pairs.val/dataset.json" in result.stdout + result.stderr


def test_a_download_archive_can_supply_the_release(tmp_path):
    target = tmp_path / "corenet"  # not there yet: the archive extracts it; the config's counts size it
    extra = {
        "source": {"corenet": str(target)},
        "download": {"archives": {"corenet_single_test": {
            "url": "https://storage.googleapis.com/gresearch/corenet/single.test.tar", "sha256": "skip",
            "extract_to": str(target)}}},
    }
    result = dry_run(tmp_path, extra, "results/scenes/single/test/shard-00000.parquet")
    counts = job_counts(result.stdout)
    assert counts["download"] == 1 and counts["import_corenet"] == 1


def test_a_bad_release_path_fails_with_one_line_naming_the_key(tmp_path):
    result = dry_run(tmp_path, {"source": {"corenet": str(tmp_path / "missing")}}, check=False)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "source.corenet" in line]
    assert len(lines) == 1 and f"source.corenet: {tmp_path / 'missing'} is not a folder" in lines[0]


def test_a_checkpoint_is_imported_instead_of_trained(tmp_path):
    release = write_release(tmp_path / "corenet")
    checkpoint = tmp_path / "state_000000000.cpt"
    checkpoint.write_bytes(b"dry run: not read")
    extra = {"source": {"corenet": str(release)},
             "models": {"run": ["h7"], "scale": "paper", "checkpoint": {"h7": str(checkpoint)}}}
    result = dry_run(tmp_path, extra, "eval_h7")
    counts = job_counts(result.stdout)
    assert counts["import_checkpoint"] == 1 and "train" not in counts
    assert counts["evaluate_corenet"] == 1
    # h7 at paper scale: single scenes (test, and train for the baseline) at 128^3
    single = shards(RELEASE["single"]["test"]) + shards(RELEASE["single"]["train"])
    assert counts["import_corenet"] == counts["voxelize"] == single
    assert "results/voxels/128/single/test/shard-00000.parquet" in result.stdout
    assert (f"python -m stages.import_checkpoint corenet --checkpoint {checkpoint} --model h7"
            in result.stdout)
    assert "--training-log results/models/h7/metrics.csv" in result.stdout
    # another model still trains
    assert job_counts(dry_run(tmp_path / "h5", {**extra, "models": {**extra["models"], "run": []}},
                              "train_h5").stdout)["train"] == 1


def test_models_checkpoint_is_checked_when_the_dag_is_built(tmp_path):
    for number, (models, message) in enumerate([
        ({"scale": "paper", "checkpoint": {"h7": str(tmp_path / "none.cpt")}}, "models.checkpoint.h7:"),
        ({"scale": "small", "checkpoint": {"h7": str(REPO / "README.md")}}, "set models.scale: paper"),
        ({"scale": "paper", "checkpoint": {"h77": str(REPO / "README.md")}}, "models.checkpoint.h77: no model file"),
    ]):
        result = dry_run(tmp_path / str(number), {"models": {"run": [], **models}}, "all", check=False)
        assert result.returncode != 0 and message in result.stdout + result.stderr


def test_the_importer_marks_its_models_released_and_writes_an_empty_training_log(tmp_path):
    from stages import import_checkpoint as ic
    from stages.report.evaluations import TrainingLog

    ic._write_training_log(tmp_path / "metrics.csv")
    assert TrainingLog.read(tmp_path / "metrics.csv").frame.empty
    assert '"released": True' in (REPO / "stages" / "import_checkpoint.py").read_text()


def test_the_report_labels_a_released_checkpoint():
    from stages.families.corenet import evaluate, report
    from stages.report.evaluations import EvalSummary, ModelEvaluation, TrainingLog
    from stages.report.page import training_section

    assert report.RELEASED_CHECKPOINT == evaluate.RELEASED_CHECKPOINT == "released checkpoint"
    columns = ["__void__", "chair", "__global__"]
    metrics = report.ClassMetrics(pd.DataFrame([[0.9, 0.5, 0.5]] * 3, index=list(report.METRIC_ROWS), columns=columns))
    log = TrainingLog(pd.DataFrame(columns=["step", "epoch", "examples", "loss"]))

    def evaluation(extra):
        summary = EvalSummary(model="h7", family="corenet", mean_iou=0.5, extra=extra)
        return ModelEvaluation("h7", summary, log, report.CorenetReport(metrics, None, None))

    assert "released checkpoint" in report.class_table(evaluation({"source": "released checkpoint"}))
    assert "released checkpoint" not in report.class_table(evaluation({}))
    assert "h7" in training_section([evaluation({"source": "released checkpoint"})])
