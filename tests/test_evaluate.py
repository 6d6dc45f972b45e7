import math

import numpy as np
import pytest
import torch
from PIL import Image

from ddpmseg.evaluate import (
    calibration_bins,
    confidence,
    error_detection_auroc,
    expected_calibration_error,
    image_uncertainty_score,
    jensen_shannon,
    majority_vote,
    margin,
    mean_iou,
    per_class_iou,
    save_palette_png,
    soft_vote,
    votes_at_original_size,
)

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


def test_votes_and_uncertainty():
    # 3 members, 2 pixels, 3 classes
    p = torch.tensor(
        [
            [[0.6, 0.3, 0.1], [1.0, 0.0, 0.0]],
            [[0.1, 0.5, 0.4], [1.0, 0.0, 0.0]],
            [[0.1, 0.45, 0.45], [1.0, 0.0, 0.0]],
        ]
    )
    assert majority_vote(p).tolist() == [1, 0]
    assert soft_vote(p).tolist() == [1, 0]
    js = jensen_shannon(p)
    assert js[1].item() == pytest.approx(0.0, abs=1e-6)  # members agree: no uncertainty
    assert js[0].item() > 0.05
    # two confident members that disagree: JS = ln 2
    disagree = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert jensen_shannon(disagree).item() == pytest.approx(math.log(2), rel=1e-5)
    # majority and soft vote can differ: two members lean to class 1, one is sure of class 0
    split = torch.tensor([[[0.4, 0.6]], [[0.4, 0.6]], [[1.0, 0.0]]])
    assert majority_vote(split).tolist() == [1]
    assert soft_vote(split).tolist() == [0]


def test_image_score_is_mean_of_top_tenth():
    js = np.arange(100, dtype=np.float32).reshape(10, 10)
    assert image_uncertainty_score(js) == pytest.approx(np.mean(np.arange(90, 100)))


def test_palette_png_keeps_class_ids(tmp_path):
    mask = np.array([[0, 1, 2], [5, 255, 3]], np.uint8)
    save_palette_png(mask, tmp_path / "m.png", num_classes=6)
    image = Image.open(tmp_path / "m.png")
    assert image.mode == "P"
    np.testing.assert_array_equal(np.array(image), mask)


def random_probabilities(members: int, classes: int, size: int, seed: int = 0) -> torch.Tensor:
    """(M, C, S, S) softmax of smooth random logits (an upsampled 4x4 grid: regions, as a model gives)."""
    logits = torch.randn(members, classes, 4, 4, generator=torch.Generator().manual_seed(seed)) * 3
    return torch.softmax(torch.nn.functional.interpolate(logits, size=(size, size), mode="bilinear"), dim=1)


def test_votes_at_the_model_size_are_the_model_size_votes():
    p = random_probabilities(3, 4, 16)
    votes = votes_at_original_size(p, 16, 16, "pad", 255, ("majority", "soft", "argmax", "js", "entropy"))
    flat = p.permute(0, 2, 3, 1).reshape(3, -1, 4)
    assert (votes["majority"] == majority_vote(flat).reshape(16, 16).numpy()).all()
    assert (votes["soft"] == soft_vote(flat).reshape(16, 16).numpy()).all()
    assert (votes["argmax"] == flat[0].argmax(dim=-1).reshape(16, 16).numpy()).all()
    np.testing.assert_allclose(votes["js"], jensen_shannon(flat).reshape(16, 16).numpy(), atol=1e-6)
    assert votes["majority"].dtype == np.uint8 and votes["js"].dtype == np.float32


@pytest.mark.parametrize("height, width", [(24, 40), (40, 24), (25, 40)])
def test_padded_votes_are_the_upsampled_square_with_the_padding_cut_off(height, width):
    """'pad': the probabilities upsampled to the padded square's side (bilinear, as F.interpolate),
    then the image's rows and columns taken: the vote of that, also in small chunks."""
    p = random_probabilities(3, 4, 16)
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    big = torch.nn.functional.interpolate(p, size=(side, side), mode="bilinear", align_corners=False)
    big = big[:, :, top:top + height, left:left + width].permute(0, 2, 3, 1).reshape(3, -1, 4)
    for chunk in (1 << 24, 100):
        votes = votes_at_original_size(p, height, width, "pad", 255, ("majority", "js"), chunk=chunk)
        assert votes["majority"].shape == (height, width)
        assert (votes["majority"] == majority_vote(big).reshape(height, width).numpy()).all()
        np.testing.assert_allclose(votes["js"], jensen_shannon(big).reshape(height, width).numpy(), atol=1e-5)


def test_cropped_votes_leave_the_cut_off_sides_unpredicted():
    """'crop': the centre square gets the upsampled votes; the sides the model never saw get the
    ignore label and the largest uncertainty (ln of min(members, classes) for JS)."""
    p = random_probabilities(3, 4, 16)
    votes = votes_at_original_size(p, 24, 40, "crop", 255, ("majority", "js"))
    big = torch.nn.functional.interpolate(p, size=(24, 24), mode="bilinear", align_corners=False)
    inside = majority_vote(big.permute(0, 2, 3, 1).reshape(3, -1, 4)).reshape(24, 24).numpy()
    assert (votes["majority"][:, 8:32] == inside).all()
    assert (votes["majority"][:, :8] == 255).all() and (votes["majority"][:, 32:] == 255).all()
    assert np.allclose(votes["js"][:, :8], math.log(3))
    with pytest.raises(ValueError, match="unknown outputs"):
        votes_at_original_size(p, 24, 40, "crop", 255, ("mode",))


def test_confidence_and_margin_of_the_soft_vote():
    # 2 members, 2 pixels, 3 classes: mean of pixel 0 = (.5, .3, .2), of pixel 1 = (.1, .45, .45)
    p = torch.tensor([[[0.6, 0.2, 0.2], [0.1, 0.5, 0.4]], [[0.4, 0.4, 0.2], [0.1, 0.4, 0.5]]])
    torch.testing.assert_close(confidence(p), torch.tensor([0.5, 0.45]))
    torch.testing.assert_close(margin(p), torch.tensor([0.2, 0.0]))


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
