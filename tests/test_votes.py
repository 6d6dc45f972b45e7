"""The ensemble's votes and uncertainty, at the model's size and at an image's own (`ddpmseg.votes`)."""
import math

import numpy as np
import pytest
import torch

from ddpmseg.votes import (
    confidence,
    image_uncertainty_score,
    jensen_shannon,
    majority_vote,
    margin,
    soft_vote,
    votes_at_original_size,
)


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
