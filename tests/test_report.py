"""The HTML result report: built from fixture evaluation outputs in the contract's exact formats,
then checked cell by cell (the right numbers in the right places), image by image (every inlined
PNG decodes), and for the refusals (a missing evaluation fails with a named file, no page).

`write_run` builds the fixture run; tests/test_report_browser.py reuses it.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mesh_fixtures import write_mesh_table
from stages.report.benchmarks import read_benchmarks
from stages.report.build import build_report
from stages.report.inputs import MissingEvaluation, ReportInputError, evaluation_files, report_inputs
from stages.report.plots import Series, format_number, line_plot, nice_ticks
from stages.report.provenance import Provenance, collect_provenance, git_revision, package_versions
from stages.tables import QUARANTINE, SCENES, pack_array, write_shard

REPO = Path(__file__).resolve().parents[1]
NAN = math.nan

# -- The fixture run ------------------------------------------------------------------------------

# CoReNet models: per-class IoU / precision / recall of the model and of the baseline.
# Values avoid rounding ties so the page's one-decimal percentages are unambiguous.
CORENET = {
    "h5": {
        "task": "fg_bg",
        "paper": 0.579,
        "iou": {"__void__": 0.9512, "airplane": 0.5512, "chair": 0.6234, "table": NAN, "__global__": 0.6021},
        "precision": {"__void__": 0.9701, "airplane": 0.6633, "chair": 0.7342, "table": NAN, "__global__": 0.7114},
        "recall": {"__void__": 0.9788, "airplane": 0.7644, "chair": 0.8052, "table": 0.0, "__global__": 0.7961},
        "baseline_iou": {"__void__": 0.9013, "airplane": 0.1524, "chair": 0.2113, "table": 0.0917, "__global__": 0.2046},
    },
    "m7": {
        "task": "semantic",
        "paper": 0.431,
        "iou": {"__void__": 0.9333, "car": 0.4471, "chair": 0.3862, "sofa": 0.2914, "__global__": 0.4127},
        "precision": {"__void__": 0.9611, "car": 0.5512, "chair": 0.4983, "sofa": 0.3777, "__global__": 0.5233},
        "recall": {"__void__": 0.9644, "car": 0.7011, "chair": 0.6322, "sofa": 0.5563, "__global__": 0.6621},
        "baseline_iou": {"__void__": 0.8811, "car": 0.1836, "chair": 0.1212, "sofa": 0.1019, "__global__": 0.1408},
    },
}
R2N2_CLASSES = ("airplane", "chair")
R2N2_THRESHOLDS = (0.2, 0.3, 0.4, 0.5)
R2N2_BASELINE = 0.2317
MODELS = ("h5", "m7", "r2n2")
QUALITATIVE = {"h5": ["single-test-00003", "single-test-00011"], "m7": [], "r2n2": ["r2n2-test-00000"]}
SCENE_IOUS = [0.91, 0.12, 0.55, 0.71, 0.03, 0.66, 0.48, 0.83, 0.27, 0.59]
BENCHMARK_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
BENCHMARKS = {
    "convert_shapenet/00000.tsv": "12.5000\t0:00:12\t150.25\t900.1\t140.0\t141.0\t1.0\t2.0\t95.0\t11.9\n",
    "convert_shapenet/00001.tsv": "7.2500\t0:00:07\t210.50\t910.2\t200.0\t201.0\t1.0\t2.0\t90.0\t6.8\n",
    "voxelize/32/single/test/00000.tsv": "3.0000\t0:00:03\t-\t-\t-\t-\tNA\tNA\t-\t-\n",
}
CONFIG_TEXT = "results: results\nmodels:\n  run: [h5, m7, r2n2]\n"


def r2n2_iou(views: int, threshold: float, cls: str) -> float:
    base = {"airplane": 0.50, "chair": 0.40}.get(cls, 0.45)
    return round(base + 0.0317 * views - 0.21 * (threshold - 0.4) ** 2, 4)


def metrics_frame(values: dict[str, dict[str, float]]) -> pd.DataFrame:
    """CoReNet's voxel_metrics.csv layout: rows iou/precision/recall; __void__, classes, __global__."""
    frame = pd.DataFrame(values).T
    classes = sorted(c for c in frame.columns if not c.startswith("__"))
    return frame[["__void__", *classes, "__global__"]].loc[["iou", "precision", "recall"]]


def class_mean(values: dict[str, float]) -> float:
    found = [v for c, v in values.items() if not c.startswith("__") and not math.isnan(v)]
    return sum(found) / len(found)


def write_png(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    tiles = [np.full((32, 32, 3), rng.integers(0, 256, 3), dtype=np.uint8) for _ in range(7)]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(tiles, axis=1)).save(path)


def write_training_log(path: Path, rows: int, seed: int) -> None:
    step = np.arange(1, rows + 1) * 10
    rng = np.random.default_rng(seed)
    val = np.full(rows, np.nan)
    val[9::10] = np.linspace(0.2, 0.5, len(val[9::10]))
    frame = pd.DataFrame({
        "step": step,
        "epoch": step // 100,
        "examples": step * 4,
        "loss": 0.9 * np.exp(-step / 200) + 0.1 + rng.uniform(0, 0.01, rows),
        "lr": 4e-4,
        "examples_per_s": 20.0 + np.arange(rows) % 3,
        "elapsed_s": step * 0.2,
        "val_iou": val,
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def summary(model: str, family: str, task: str, mean_iou: float, baseline: float, paper, **extra) -> dict:
    return {
        "model": model, "family": family, "task": task, "dataset": "single", "realism": "low",
        "scale": "small", "native_resolution": 32, "eval_resolution": 32, "mean_iou": mean_iou,
        "global_iou": extra.pop("global_iou", None), "baseline_mean_iou": baseline,
        "baseline_global_iou": extra.pop("baseline_global_iou", None), "paper_mean_iou": paper,
        "test_scenes": 150, "checkpoint_step": 500, "examples_seen": 2000, **extra,
    }


def scene_row(scene_id: str, dataset: str, split: str, labels: list[str]) -> dict:
    n = len(labels)
    return {
        "scene_id": scene_id, "dataset": dataset, "split": split, "num_objects": n,
        "mesh_labels": labels, "mesh_ids": [f"m{i}" for i in range(n)],
        "object_to_world": pack_array(np.tile(np.eye(4), (n, 1, 1)), "<f8"),
        "view_transform": pack_array(np.eye(4), "<f8"), "camera_transform": pack_array(np.eye(4), "<f8"),
        "seed": 0, "source": "synthetic",
    }


SCENE_FIXTURE = {  # dataset -> split -> scenes (each a list of synsets)
    "single": {
        "train": [["03001627"], ["03001627"], ["04379243"], ["02958343"]],
        "test": [["03001627"], ["04379243"]],
    },
    "pairs": {"train": [["03001627", "04379243"], ["02958343", "03001627"]], "val": [["04379243", "04379243"]]},
}


def write_run(root: Path) -> tuple[Path, Path]:
    """A complete fixture run under root/results; returns (results, config file)."""
    results = root / "results"
    for model, spec in CORENET.items():
        evaluation = results / "eval" / model
        evaluation.mkdir(parents=True)
        metrics = metrics_frame({"iou": spec["iou"], "precision": spec["precision"], "recall": spec["recall"]})
        metrics.to_csv(evaluation / "voxel_metrics.csv")
        baseline = metrics_frame({
            "iou": spec["baseline_iou"],
            "precision": {k: v / 2 for k, v in spec["baseline_iou"].items()},
            "recall": {k: min(1.0, v * 3) for k, v in spec["baseline_iou"].items()},
        })
        baseline.to_csv(evaluation / "baseline_metrics.csv")
        s = summary(model, "corenet", spec["task"], class_mean(spec["iou"]), class_mean(spec["baseline_iou"]),
                    spec["paper"], global_iou=spec["iou"]["__global__"],
                    baseline_global_iou=spec["baseline_iou"]["__global__"],
                    paper_source="CoReNet (Popov et al., ECCV 2020)", device="cpu")
        (evaluation / "summary.json").write_text(json.dumps(s))
    r2n2 = results / "eval" / "r2n2"
    r2n2.mkdir(parents=True)
    rows = [
        {"views": v, "threshold": t, "class": c, "iou": r2n2_iou(v, t, c)}
        for v in range(1, 6) for t in R2N2_THRESHOLDS for c in (*R2N2_CLASSES, "__mean__")
    ]
    pd.DataFrame(rows).to_csv(r2n2 / "iou_by_views.csv", index=False)
    (r2n2 / "summary.json").write_text(json.dumps(
        summary("r2n2", "r2n2", "fg_bg", r2n2_iou(5, 0.4, "__mean__"), R2N2_BASELINE, None, threshold=0.4,
                paper_mean_iou_by_views={"1": 0.56, "2": 0.603, "3": 0.617, "4": 0.625, "5": 0.634})
    ))
    pd.DataFrame({
        "scene_id": [f"single-test-{i:05d}" for i in range(len(SCENE_IOUS))],
        "classes": ["chair", "airplane", "table", "chair", "table", "airplane", "chair", "chair", "table", "airplane"],
        "iou": np.array(SCENE_IOUS, dtype="float64"),
        "predicted_voxels": np.arange(len(SCENE_IOUS), dtype="int64") * 100 + 50,
        "true_voxels": np.arange(len(SCENE_IOUS), dtype="int64") * 90 + 40,
    }).to_parquet(results / "eval" / "h5" / "scenes.parquet")
    for model, scenes in QUALITATIVE.items():
        for index, scene_id in enumerate(scenes):
            write_png(results / "eval" / model / "qualitative" / f"{index:02d}_{scene_id}.png", seed=index + 7)
    for seed, model in enumerate(MODELS):
        write_training_log(results / "models" / model / "metrics.csv", rows=40 + 10 * seed, seed=seed)

    write_mesh_table(results / "meshes", per_class=5, num_shards=2)
    quarantine = pd.DataFrame([
        {"synset": "03001627", "mesh_id": "bad0001", "source_path": "03001627/bad0001", "reason": "no faces"},
        {"synset": "02958343", "mesh_id": "bad0002", "source_path": "02958343/bad0002",
         "reason": "unreadable OBJ <line 3>"},
        {"synset": "03001627", "mesh_id": "bad0003", "source_path": "03001627/bad0003", "reason": "no faces"},
    ])
    write_shard(quarantine, results / "quarantine" / "shard-00000.parquet", QUARANTINE)
    write_shard(quarantine.iloc[:0], results / "quarantine" / "shard-00001.parquet", QUARANTINE)
    for dataset, splits in SCENE_FIXTURE.items():
        for split, scenes in splits.items():
            frame = pd.DataFrame([scene_row(f"{dataset}-{split}-{i:05d}", dataset, split, labels)
                                  for i, labels in enumerate(scenes)], columns=SCENES.columns)
            write_shard(frame, results / "scenes" / dataset / split / "shard-00000.parquet", SCENES)
    for name, row in BENCHMARKS.items():
        path = results / "benchmarks" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(BENCHMARK_HEADER + row)
    config = root / "config.yaml"
    config.write_text(CONFIG_TEXT)
    return results, config


FIXED_PROVENANCE = Provenance(
    generated_utc="2026-11-21 12:00:00 UTC",
    git_commit="0123456789abcdef0123456789abcdef01234567",
    git_state="clean",
    versions={"python": "3.11.7", "torch": "2.13.0", "numpy": "2.4.6", "pandas": "3.1.1",
              "pyarrow": "26.0.1", "snakemake": "9.27.1"},
    host="fixture-host",
    platform="Linux",
    gpu="none",
    configs=[],
)


# -- Reading the page back ------------------------------------------------------------------------


class PageParser(HTMLParser):
    """Collects every element with an id (text and attributes), every img, every link/source."""

    VOID = {"img", "meta", "br", "hr", "input", "link", "source", "col", "wbr", "area", "base", "embed", "track"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.by_id: dict[str, dict] = {}
        self.duplicate_ids: list[str] = []
        self.images: list[dict] = []
        self.references: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.tags: list[str] = []
        self._open: list[tuple[str, dict | None]] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append(tag)
        for name in ("src", "href", "action", "data", "poster", "srcset", "xlink:href"):
            if name in attributes:
                self.references.append((tag, name, attributes[name]))
        if tag == "img":
            self.images.append(attributes)
        record = None
        if "id" in attributes:
            if attributes["id"] in self.by_id:
                self.duplicate_ids.append(attributes["id"])
            record = {"tag": tag, "attrs": attributes, "text": ""}
            self.by_id[attributes["id"]] = record
        if tag not in self.VOID:
            self._open.append((tag, record))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID and self._open:
            self._open.pop()

    def handle_endtag(self, tag):
        while self._open:
            open_tag, _ = self._open.pop()
            if open_tag == tag:
                break

    def handle_data(self, data):
        for _, record in self._open:
            if record is not None:
                record["text"] += data


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def pct(value: float) -> str:
    """The page's percentage format, written independently: one decimal, en dash for none."""
    return "\u2013" if math.isnan(value) else f"{100 * value:.1f}"


# -- Fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str, PageParser]:
    root = tmp_path_factory.mktemp("report")
    results, config = write_run(root)
    provenance = collect_provenance([config], repo=REPO)
    out = build_report(results, list(MODELS), [config], results / "report" / "index.html", provenance=provenance)
    page = out.read_text(encoding="utf-8")
    return out, page, parse(page)


def cell(parsed: PageParser, cell_id: str) -> str:
    assert cell_id in parsed.by_id, f"no element with id {cell_id!r}"
    return parsed.by_id[cell_id]["text"].strip()


# -- Content --------------------------------------------------------------------------------------


def test_page_is_one_file_with_unique_ids(built):
    out, page, parsed = built
    assert out.name == "index.html" and page.startswith("<!DOCTYPE html>")
    assert parsed.duplicate_ids == []
    assert not list(out.parent.glob("*.tmp-*"))


@pytest.mark.parametrize("model", sorted(CORENET))
def test_class_table_holds_model_baseline_and_delta(built, model):
    _, _, parsed = built
    spec = CORENET[model]
    classes = [c for c in spec["iou"] if not c.startswith("__")]
    for cls in [*classes, "__void__", "__global__"]:
        assert cell(parsed, f"{model}-{cls}-iou") == pct(spec["iou"][cls])
        assert cell(parsed, f"{model}-{cls}-precision") == pct(spec["precision"][cls])
        assert cell(parsed, f"{model}-{cls}-recall") == pct(spec["recall"][cls])
        assert cell(parsed, f"{model}-{cls}-baseline_iou") == pct(spec["baseline_iou"][cls])
        delta = spec["iou"][cls] - spec["baseline_iou"][cls]
        assert cell(parsed, f"{model}-{cls}-delta_iou") == ("\u2013" if math.isnan(delta) else f"{100 * delta:+.1f}")
        sort = parsed.by_id[f"{model}-{cls}-iou"]["attrs"]["data-sort"]
        assert sort == ("" if math.isnan(spec["iou"][cls]) else repr(spec["iou"][cls]))
    assert cell(parsed, f"{model}-__mean__-iou") == pct(class_mean(spec["iou"]))
    assert cell(parsed, f"{model}-__mean__-baseline_iou") == pct(class_mean(spec["baseline_iou"]))
    assert cell(parsed, f"{model}-paper-class") == "paper (real ShapeNet)"
    assert cell(parsed, f"{model}-paper-iou") == pct(spec["paper"])
    assert cell(parsed, f"{model}-paper-baseline_iou") == "\u2013"
    # The paper row is a footer row: it never sorts in among the classes.
    assert "tfoot" in _enclosing(built[1], f'id="{model}-paper-iou"')


def _enclosing(page: str, marker: str) -> str:
    before = page[: page.index(marker)]
    return "tfoot" if before.rfind("<tfoot>") > before.rfind("<tbody>") else "tbody"


def test_summary_extras_are_shown(built):
    _, page, _ = built
    caption = re.search(r'<table class="sortable" id="classes-h5"><caption>(.*?)</caption>', page)[1]
    assert "paper (real ShapeNet) row is the published mean IoU" in caption
    assert "source: CoReNet (Popov et al., ECCV 2020)" in caption
    assert "<dt>device</dt><dd>cpu</dd>" in page


def test_h5_chair_cell_spelled_out(built):
    _, _, parsed = built
    assert cell(parsed, "h5-chair-iou") == "62.3"
    assert cell(parsed, "h5-chair-baseline_iou") == "21.1"
    assert cell(parsed, "h5-table-iou") == "\u2013"  # no true positive
    assert cell(parsed, "h5-paper-iou") == "57.9"


def test_overview_lists_every_model(built):
    _, _, parsed = built
    for model, spec in CORENET.items():
        assert cell(parsed, f"overview-{model}-mean_iou") == pct(class_mean(spec["iou"]))
        assert cell(parsed, f"overview-{model}-baseline_mean_iou") == pct(class_mean(spec["baseline_iou"]))
        assert cell(parsed, f"overview-{model}-paper_mean_iou") == pct(spec["paper"])
        assert cell(parsed, f"overview-{model}-global_iou") == pct(spec["iou"]["__global__"])
        assert cell(parsed, f"overview-{model}-examples_seen") == "2,000"
    assert cell(parsed, "overview-r2n2-mean_iou") == pct(r2n2_iou(5, 0.4, "__mean__"))
    assert cell(parsed, "overview-r2n2-baseline_mean_iou") == pct(R2N2_BASELINE)


def test_r2n2_views_table_with_paper_numbers_at_threshold_04(built):
    _, page, parsed = built
    for views in range(1, 6):
        for cls in (*R2N2_CLASSES, "__mean__"):
            assert cell(parsed, f"r2n2-{cls}-v{views}") == pct(r2n2_iou(views, 0.4, cls))
        for threshold in R2N2_THRESHOLDS:
            assert cell(parsed, f"r2n2-t{threshold:g}-v{views}") == pct(r2n2_iou(views, threshold, "__mean__"))
        assert cell(parsed, f"r2n2-baseline-v{views}") == pct(R2N2_BASELINE)
    paper = {1: "56.0", 2: "60.3", 3: "61.7", 4: "62.5", 5: "63.4"}
    for views, text in paper.items():
        assert cell(parsed, f"r2n2-paper-v{views}") == text
    assert cell(parsed, "r2n2-paper-class") == "paper (real ShapeNet)"
    caption = re.search(r'<table class="sortable" id="views-r2n2"><caption>(.*?)</caption>', page)[1]
    assert "threshold 0.4" in caption


def test_training_curves_and_table(built):
    _, page, parsed = built
    svgs = re.findall(r"<svg\b.*?</svg>", page, flags=re.S)
    assert svgs, "no plots"
    for svg in svgs:
        ET.fromstring(svg)  # every plot is well-formed SVG
    loss_plot = next(s for s in svgs if "Training loss" in s)
    labels = re.findall(r'<text class="axis-label[^"]*"[^>]*>([^<]*)</text>', loss_plot)
    assert labels == ["examples seen", "loss"]
    assert loss_plot.count("<polyline") == len(MODELS)
    validation = next(s for s in svgs if "IoU during training" in s)
    assert "IoU (%)" in validation
    frame = pd.read_csv(built[0].parents[1] / "models" / "h5" / "metrics.csv")
    assert cell(parsed, "training-h5-examples") == f"{int(frame['examples'].iloc[-1]):,}"
    assert cell(parsed, "training-h5-final_loss") == f"{frame['loss'].iloc[-1]:.4f}"
    assert cell(parsed, "training-h5-best_val_iou") == pct(frame["val_iou"].max())


def test_runtime_table_and_units(built):
    _, page, parsed = built
    assert cell(parsed, "runtime-convert_shapenet-jobs") == "2"
    assert cell(parsed, "runtime-convert_shapenet-total_s") == "19.8"
    assert cell(parsed, "runtime-convert_shapenet-max_s") == "12.5"
    assert cell(parsed, "runtime-convert_shapenet-max_rss_mb") == "210"
    assert cell(parsed, "runtime-voxelize-jobs") == "1"
    assert cell(parsed, "runtime-voxelize-max_rss_mb") == "\u2013"  # "-" in the file: not measured
    assert "wall-clock time (seconds)" in page and "max resident memory (MB)" in page


def test_dataset_statistics(built):
    _, page, parsed = built
    assert cell(parsed, "meshes-chair-usable") == "5"
    assert cell(parsed, "meshes-chair-quarantined") == "2"
    assert cell(parsed, "meshes-car-quarantined") == "1"
    assert cell(parsed, "meshes-all-usable") == "15"
    assert cell(parsed, "quarantine-02958343-bad0002-reason") == "unreadable OBJ <line 3>"
    assert "unreadable OBJ &lt;line 3&gt;" in page  # escaped, not markup
    assert cell(parsed, "scenes-single-chair-train") == "2"
    assert cell(parsed, "scenes-single-all-train") == "4"
    assert cell(parsed, "scenes-pairs-table-val") == "2"
    assert cell(parsed, "scenes-pairs-all-val") == "1"


def test_provenance(built):
    _, page, parsed = built
    for package in ("python", "torch", "numpy", "pandas", "pyarrow", "snakemake"):
        assert cell(parsed, f"version-{package}") == package_versions()[package]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    if commit:
        assert commit in page
    assert "models:\n  run: [h5, m7, r2n2]" in page  # the config file, verbatim
    assert "GPU (seen by the report job)" in page


def test_every_image_is_an_inlined_png_that_decodes(built):
    _, _, parsed = built
    expected = sum(len(v) for v in QUALITATIVE.values())
    assert len(parsed.images) == expected
    for attributes in parsed.images:
        src = attributes["src"]
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True))) as image:
            image.load()
            assert image.size == (int(attributes["width"]), int(attributes["height"])) == (7 * 32, 32)
        assert attributes["alt"]


def test_no_external_references(built):
    _, page, parsed = built
    for tag, attribute, value in parsed.references:
        assert value.startswith(("data:", "#")), f"<{tag} {attribute}={value[:60]!r}> leaves the page"
    assert not re.search(r"(?i)\b(?:https?|ftp|wss?):", page)
    assert not re.search(r"(?i)url\(|@import|//[a-z0-9.-]+\.[a-z]{2,}/", page)
    assert not {"link", "iframe", "object", "embed", "base"} & set(parsed.tags)
    assert "Content-Security-Policy" in page


def test_table_of_contents_links_resolve(built):
    _, page, parsed = built
    anchors = set(re.findall(r'href="#([^"]+)"', page))
    assert {"overview", "models", "training", "datasets", "runtime", "provenance", "model-h5", "model-r2n2"} <= anchors
    assert anchors <= set(parsed.by_id), anchors - set(parsed.by_id)


def test_sortable_tables_have_numeric_sort_keys(built):
    _, page, _ = built
    table = re.search(r'<table class="sortable" id="classes-h5">.*?</table>', page, flags=re.S)[0]
    body = re.search(r"<tbody>(.*?)</tbody>", table, flags=re.S)[1]
    assert re.findall(r'<th scope="row" id="h5-([a-z]+)-class"', body) == ["airplane", "chair", "table"]
    assert '<th scope="col" data-type="number"' in table and "<button" in table


# -- Refusals -------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stages.report", *args], cwd=REPO, capture_output=True, text=True)


@pytest.fixture
def run_copy(tmp_path) -> tuple[Path, Path]:
    return write_run(tmp_path)


@pytest.mark.parametrize("missing", ["eval/m7/voxel_metrics.csv", "eval/r2n2/iou_by_views.csv",
                                     "eval/h5/summary.json", "models/m7/metrics.csv", "eval/h5/baseline_metrics.csv"])
def test_missing_evaluation_fails_without_writing(run_copy, missing):
    results, config = run_copy
    (results / missing).unlink()
    out = results / "report" / "index.html"
    result = run_cli("--results", str(results), "--config", str(config), "--models", *MODELS, "--out", str(out))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("report: ") and str(results / missing) in lines[0]
    assert not out.exists()
    assert not (results / "report").exists() or not any((results / "report").iterdir())


def test_unlisted_model_is_not_required(run_copy):
    results, config = run_copy
    shutil.rmtree(results / "eval" / "m7")
    out = build_report(results, ["h5"], [config], results / "report" / "index.html", provenance=FIXED_PROVENANCE)
    page = out.read_text()
    assert 'id="model-h5"' in page and 'id="model-m7"' not in page


def test_failure_keeps_the_previous_page(run_copy):
    results, config = run_copy
    out = results / "report" / "index.html"
    build_report(results, ["h5"], [config], out, provenance=FIXED_PROVENANCE)
    before = out.read_bytes()
    (results / "eval" / "h5" / "voxel_metrics.csv").unlink()
    with pytest.raises(MissingEvaluation, match="voxel_metrics.csv"):
        build_report(results, ["h5"], [config], out, provenance=FIXED_PROVENANCE)
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda r: (r / "eval/h5/summary.json").write_text(json.dumps({"model": "h7", "family": "corenet", "mean_iou": 0.5})),
         "says model 'h7'"),
        (lambda r: (r / "eval/h5/summary.json").write_text("{not json"), "not readable JSON"),
        (lambda r: (r / "eval/h5/voxel_metrics.csv").write_text(",__void__,chair\niou,0.9,0.5\n"), "missing rows"),
        (lambda r: (r / "models/h5/metrics.csv").write_text("step,loss\n1,0.5\n"), "missing columns"),
        (lambda r: (r / "eval/h5/qualitative/00_single-test-00003.png").write_bytes(b"GIF89a"), "not a PNG"),
    ],
)
def test_malformed_inputs_are_named(run_copy, breakage, message):
    results, config = run_copy
    breakage(results)
    with pytest.raises(ReportInputError, match=re.escape(message)):
        build_report(results, ["h5"], [config], results / "report" / "index.html", provenance=FIXED_PROVENANCE)


def test_a_run_without_models_or_tables_still_renders(tmp_path):
    out = build_report(tmp_path / "results", [], [], tmp_path / "index.html", provenance=FIXED_PROVENANCE)
    page = out.read_text()
    assert "No models were listed" in page and "No shards found for: meshes, quarantine, scenes." in page
    assert parse(page).duplicate_ids == []


def test_unreadable_config_is_an_input_error(run_copy):
    results, _ = run_copy
    result = run_cli("--results", str(results), "--config", str(results / "nope.yaml"), "--models", "h5",
                     "--out", str(results / "report" / "index.html"))
    assert result.returncode == 1 and "nope.yaml" in result.stderr


def test_markup_in_inputs_is_escaped(run_copy):
    results, config = run_copy
    path = results / "eval" / "h5" / "voxel_metrics.csv"
    frame = pd.read_csv(path, index_col=0).rename(columns={"chair": "<script>alert(1)</script>"})
    frame.to_csv(path)
    page = build_report(results, ["h5"], [config], results / "report" / "index.html",
                        provenance=FIXED_PROVENANCE).read_text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# -- Building blocks ------------------------------------------------------------------------------


def test_rule_inputs_follow_the_family():
    files = report_inputs("results", {"h5": "corenet", "r2n2": "r2n2"})
    assert files == [
        "results/eval/h5/summary.json", "results/eval/h5/voxel_metrics.csv",
        "results/eval/h5/baseline_metrics.csv", "results/models/h5/metrics.csv",
        "results/eval/r2n2/summary.json", "results/eval/r2n2/iou_by_views.csv", "results/models/r2n2/metrics.csv",
    ]
    assert set(evaluation_files("r", "m9", "corenet")) == {"summary", "metrics", "baseline", "training"}
    with pytest.raises(ReportInputError, match="model 'x': .*family must be one of"):
        evaluation_files("r", "x", "nonsense")


def test_benchmarks_summarise_per_rule(tmp_path):
    for name, row in {**BENCHMARKS, "render/low/single/train/00000.tsv": "NA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n"}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(BENCHMARK_HEADER + row)
    summaries = {b.rule: b for b in read_benchmarks(tmp_path)}
    assert list(summaries) == ["convert_shapenet", "voxelize", "render"]  # longest total first
    convert = summaries["convert_shapenet"]
    assert (convert.jobs, convert.total_s, convert.max_s, convert.max_rss_mb) == (2, 19.75, 12.5, 210.5)
    assert math.isclose(convert.cpu_s, 18.7)
    assert math.isnan(summaries["voxelize"].max_rss_mb) and math.isnan(summaries["render"].total_s)
    assert read_benchmarks(tmp_path / "nothing") == []


def test_git_revision_outside_a_repository(tmp_path):
    assert git_revision(tmp_path) == ("none (not a git repository)", "not applicable")
    commit, state = git_revision(REPO)
    assert re.fullmatch(r"[0-9a-f]{40}", commit) and state in ("clean", "dirty (uncommitted changes)")


def test_nice_ticks_and_numbers():
    assert nice_ticks(0, 0.93) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0, 123456) == [0, 50000, 100000, 150000]
    assert format_number(150000, 50000) == "150k" and format_number(0.25, 0.05) == "0.25"
    assert format_number(2_500_000) == "2.5M"


def test_line_plot_breaks_at_missing_values_and_labels_axes():
    svg = line_plot([Series("a & b", [0, 1, 2, 3, 4], [1.0, 0.5, NAN, 0.4, 0.3])],
                    title="t", x_label="examples seen", y_label="loss")
    root = ET.fromstring(svg)
    assert len(root.findall("polyline")) == 2
    texts = [t.text for t in root.iter("text")]
    assert "examples seen" in texts and "loss" in texts and "a & b" in texts


@pytest.mark.e2e
def test_snakemake_rule_and_native_report(tmp_path):
    """The rule runs the CLI on a fixture run; `snakemake --report` then packs the page."""
    results, _ = write_run(tmp_path)
    config = {
        "results": "results",
        "models": {"run": list(MODELS)},
        "meshes": {"shards": 2},
        "scenes": {"datasets": {"single": {}, "pairs": {}}},
    }
    (tmp_path / "config.yaml").write_text(json.dumps(config))
    # A stand-in for common.smk: the helpers report.smk uses, over the fixture's files.
    (tmp_path / "Snakefile").write_text(
        'configfile: "config.yaml"\n'
        'RESULTS = config["results"]\n'
        'CPU_IMAGE = "containers/recon3d-cpu.sif"\n'
        'MODEL_FAMILIES = {"h5": "corenet", "m7": "corenet", "r2n2": "r2n2"}\n'
        "def mesh_shards(table='meshes'):\n"
        "    return [f'{RESULTS}/{table}/shard-{i:05d}.parquet' for i in range(config['meshes']['shards'])]\n"
        "def pix3d_evaluations():\n"
        "    return []\n"
        "def scene_shards(dataset):\n"
        "    import glob\n"
        "    return sorted(glob.glob(f'{RESULTS}/scenes/{dataset}/*/shard-*.parquet'))\n"
        f'include: "{REPO / "workflow" / "rules" / "report.smk"}"\n'
        "rule all:\n"
        "    default_target: True\n"
        "    input: rules.report.output\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}

    def snakemake(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=tmp_path, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result

    snakemake("--cores", "1")
    page = (results / "report" / "index.html").read_text()
    assert 'id="model-r2n2"' in page and "config.yaml" in page
    snakemake("--report", "report.html")
    native = (tmp_path / "report.html").read_text(errors="replace")
    assert "index.html" in native
