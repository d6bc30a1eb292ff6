"""3D-R2N2's threshold IoU and the per-views table, on hand-built grids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from stages.families.r2n2.metrics import MEAN_CLASS, IoURecord, iou_by_views_table, iou_records, threshold_iou


THRESHOLDS = (0.2, 0.3, 0.4, 0.5)  # the paper's, as config/models/r2n2.yaml lists them


def grids():
    """Two 2x2x2 samples with known answers."""
    prob = np.zeros((2, 2, 2, 2))
    gt = np.zeros((2, 2, 2, 2), dtype=np.int64)
    # Sample 0: ground truth = 4 voxels of the bottom layer.
    gt[0, 0] = 1
    prob[0, 0, 0, 0] = 0.9  # in gt
    prob[0, 0, 0, 1] = 0.45  # in gt
    prob[0, 0, 1, 0] = 0.35  # in gt
    prob[0, 1, 1, 1] = 0.25  # not in gt
    # Sample 1: one voxel, predicted exactly at the threshold 0.5 (p >= t counts).
    gt[1, 1, 1, 1] = 1
    prob[1, 1, 1, 1] = 0.5
    prob[1, 0, 0, 0] = 0.2
    return prob, gt


def test_threshold_iou_on_hand_built_grids():
    prob, gt = grids()
    iou = threshold_iou(prob, gt, (0.2, 0.3, 0.4, 0.5))
    # Sample 0: t=0.2: pred {a, b, c, d}, gt {a, b, c, e}: 3/5; t=0.3: {a, b, c}: 3/4;
    # t=0.4: {a, b}: 2/4; t=0.5: {a}: 1/4.
    assert iou[0].tolist() == [3 / 5, 3 / 4, 2 / 4, 1 / 4]
    # Sample 1: t=0.2: pred {x, y}, gt {y}: 1/2; otherwise exactly {y}: 1.
    assert iou[1].tolist() == [1 / 2, 1, 1, 1]
    assert np.array_equal(threshold_iou(torch.tensor(prob), torch.tensor(gt), (0.2, 0.3, 0.4, 0.5)), iou)


def test_empty_grids():
    empty = np.zeros((1, 4, 4, 4))
    full = np.ones((1, 4, 4, 4))
    assert threshold_iou(empty, empty, THRESHOLDS).tolist() == [[1.0] * 4]  # nothing to find, nothing found
    assert threshold_iou(empty, full, THRESHOLDS).tolist() == [[0.0] * 4]
    assert threshold_iou(full, empty, THRESHOLDS).tolist() == [[0.0] * 4]
    with pytest.raises(ValueError):
        threshold_iou(empty, np.zeros((1, 4, 4)), THRESHOLDS)


def test_table_means_per_class_and_over_samples():
    records = [
        IoURecord(1, "chair", "a", 0.4, 0.2),
        IoURecord(1, "chair", "b", 0.4, 0.4),
        IoURecord(1, "table", "c", 0.4, 0.9),
        IoURecord(5, "table", "c", 0.4, 1.0),
        {"views": 5, "class_name": "chair", "model_id": "a", "threshold": 0.4, "iou": 0.5},
    ]
    table = iou_by_views_table(records)
    assert list(table.columns) == ["views", "threshold", "class", "iou"]
    expected = pd.DataFrame(
        {
            "views": [1, 1, 1, 5, 5, 5],
            "threshold": [0.4] * 6,
            "class": ["chair", "table", MEAN_CLASS, "chair", "table", MEAN_CLASS],
            # __mean__ is over samples: (0.2 + 0.4 + 0.9) / 3, not over classes (0.3 + 0.9) / 2.
            "iou": [0.3, 0.9, 0.5, 0.5, 1.0, 0.75],
        }
    )
    pd.testing.assert_frame_equal(table, expected)


def test_records_from_a_batch():
    prob, gt = grids()
    ious = threshold_iou(prob, gt, THRESHOLDS)
    records = iou_records(3, ["car", "car"], ["m0", "m1"], ious, THRESHOLDS)
    assert len(records) == 8 and records[0] == IoURecord(3, "car", "m0", 0.2, 3 / 5)
    table = iou_by_views_table(records)
    assert table[table["class"] == MEAN_CLASS]["iou"].tolist() == pytest.approx([0.55, 0.875, 0.75, 0.625])
    assert iou_by_views_table([]).empty
