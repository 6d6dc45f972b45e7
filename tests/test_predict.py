"""The two routes of the first layer in prediction agree, and the cheaper one is taken (`ddpmseg.predict`)."""
import pytest
import torch
import torch.nn.functional as F

from ddpmseg.mlp import BatchedMLPEnsemble, predict_probabilities
from ddpmseg.predict import first_layer_route, image_probabilities


@pytest.mark.parametrize("map_sizes, size", [
    ([(1, 1), (3, 3), (8, 8)], 8),      # a 1x1 map, a non-integer scale (3 -> 8), a map at label size
    ([(5, 5), (5, 5), (2, 2)], 7),      # two maps at one resolution (their projections are summed)
    ([(4, 4), (7, 7), (1, 1)], 13),     # every scale non-integer
])
def test_first_layer_at_native_resolution_equals_the_first_layer_on_upsampled_features(map_sizes, size):
    generator = torch.Generator().manual_seed(0)
    channels = [3, 5, 4]
    maps = [torch.randn(h, w, c, generator=generator).half() for (h, w), c in zip(map_sizes, channels)]
    model = BatchedMLPEnsemble(n_members=3, in_features=sum(channels), num_classes=6, seed=1).eval()
    with torch.no_grad():  # BN statistics and biases away from their initial 0 / 1
        for name, value in model.state_dict().items():
            if name.startswith(("bias", "bn_")):
                value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
    [native] = image_probabilities([model], maps, size, chunk=10, first_layer="native")
    [upsampled] = image_probabilities([model], maps, size, chunk=10, first_layer="upsampled")
    # the paper's route, literally: upsample every map with F.interpolate, concatenate, run the MLP
    full = torch.cat([F.interpolate(m.permute(2, 0, 1)[None].float(), size=(size, size), mode="bilinear",
                                    align_corners=False)[0] for m in maps]).reshape(sum(channels), -1).T
    paper = predict_probabilities(model, full)
    assert native.shape == (3, size * size, 6)
    assert torch.allclose(native, paper, atol=1e-5) and torch.allclose(upsampled, paper, atol=1e-5)


def test_auto_takes_the_native_route_only_where_it_is_cheaper():
    """The paper's 8448 features on maps of 32-128 against the default's 640 on maps of 12-48."""
    paper_maps = [torch.empty(r, r, c) for r, c in [(32, 1024), (32, 512), (32, 512), (64, 512), (128, 256)] * 3]
    paper = BatchedMLPEnsemble(n_members=10, in_features=8448, num_classes=34, seed=0)  # 256 hidden units
    assert sum(m.shape[2] for m in paper_maps) == 8448
    assert first_layer_route([paper], paper_maps, 256) == first_layer_route([paper] * 5, paper_maps, 256) == "native"
    default_maps = [torch.empty(r, r, c) for r, c in [(12, 96), (24, 96), (24, 64), (48, 64)] * 2]
    default = BatchedMLPEnsemble(n_members=10, in_features=640, num_classes=7, seed=0)  # 10 x 128 > 640
    assert first_layer_route([default], default_maps, 48) == "upsampled"
