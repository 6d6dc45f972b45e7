"""The paper's mIoU in both conventions, calibration and error detection (`ddpmseg.metrics`)."""
import math

import numpy as np
import pytest

from ddpmseg.metrics import calibration_bins, error_detection_auroc, expected_calibration_error, mean_iou, per_class_iou


# 2 images of 2x3 pixels, 3 classes, ignore label 255.
LABELS = np.array([[[0, 0, 1], [1, 2, 255]], [[0, 1, 1], [2, 2, 255]]], np.uint8)
PREDS = np.array([[[0, 1, 1], [1, 2, 0]], [[0, 1, 1], [2, 0, 2]]], np.uint8)


def test_miou_paper_convention_counts_ignore_pixels_in_unions():
    # class 0: I = 2 (img0 px0, img1 px0); U = {img0: px0, px1(gt), px5(pred on ignore)}, {img1: px0, px4(pred)} = 5
    # class 1: I = 4; U = 5 (img0 px1 predicted 1, gt 0). class 2: I = 2; U = 4 (img1 px4 gt 2 pred 0; img1 px5 pred 2 on ignore)
    iou = per_class_iou(PREDS, LABELS, 3, 255, "paper")
    np.testing.assert_allclose(iou, [2 / 5, 4 / 5, 2 / 4], rtol=1e-6)
    assert mean_iou(PREDS, LABELS, 3, 255, "paper") == pytest.approx((2 / 5 + 4 / 5 + 2 / 4) / 3)


def test_miou_masked_convention_drops_ignore_pixels():
    iou = per_class_iou(PREDS, LABELS, 3, 255, "masked")
    np.testing.assert_allclose(iou, [2 / 4, 4 / 5, 2 / 3], rtol=1e-6)


def test_absent_class_counts_zero_and_ignore_class_is_left_out():
    labels = np.zeros((1, 2, 2), np.uint8)
    preds = np.zeros((1, 2, 2), np.uint8)
    # class 1 absent from both: the paper's code counts it as 0
    assert mean_iou(preds, labels, 2, 255) == pytest.approx(0.5)
    # bedroom_28 style: ignore label 0 is a class id that is not scored, and its pixels count in unions
    labels = np.array([[[0, 1], [2, 2]]], np.uint8)
    preds = np.array([[[1, 1], [2, 2]]], np.uint8)
    iou = per_class_iou(preds, labels, 3, 0, "paper")
    assert math.isnan(iou[0])
    np.testing.assert_allclose(iou[1:], [1 / 2, 1.0], rtol=1e-6)
    assert mean_iou(preds, labels, 3, 0, "masked") == pytest.approx(1.0)


def test_calibration_bins_and_ece_from_counts_worked_by_hand():
    # bin (0.6, 0.8]: confidences .7, .7, .75 with 2 right; bin (0.8, 1]: .9, .95 both right; 5 bins
    conf = np.array([0.7, 0.7, 0.75, 0.9, 0.95])
    correct = np.array([True, False, True, True, True])
    bins = calibration_bins(conf, correct, n_bins=5)
    assert bins["count"] == [0, 0, 0, 3, 2]
    assert bins["accuracy"][:3] == [None] * 3 and bins["accuracy"][3] == pytest.approx(2 / 3)
    assert bins["confidence"][3] == pytest.approx(0.7166667) and bins["confidence"][4] == pytest.approx(0.925)
    # ECE = 3/5 * |2/3 - .71667| + 2/5 * |1 - .925|
    assert expected_calibration_error(bins) == pytest.approx(3 / 5 * abs(2 / 3 - 2.15 / 3) + 2 / 5 * 0.075)
    # a confidence of exactly 1 is in the last bin, of 1/n the first
    assert calibration_bins(np.array([1.0, 0.2]), np.array([True, True]), 5)["count"] == [1, 0, 0, 0, 1]
    assert expected_calibration_error(calibration_bins(np.array([1.0]), np.array([True]), 5)) == 0.0


def test_error_detection_auroc_ranks_errors_against_correct_pixels():
    errors = np.array([True, True, False, False, False])
    assert error_detection_auroc(np.array([0.9, 0.8, 0.1, 0.2, 0.3]), errors) == 1.0
    assert error_detection_auroc(np.array([0.1, 0.2, 0.9, 0.8, 0.7]), errors) == 0.0
    # one error above all, one below two of the three correct pixels: (3 + 1) / 6
    assert error_detection_auroc(np.array([0.9, 0.15, 0.1, 0.2, 0.3]), errors) == pytest.approx(4 / 6)
    assert math.isnan(error_detection_auroc(np.array([0.1, 0.2]), np.array([False, False])))
