"""Learned aggregation (`ensemble.aggregation: learned`): the mixing ensemble, its folding into a
plain ensemble, and what the mixing weights learn on real masks."""
import numpy as np
import torch
import zarr

from ddpmseg.aggregation import CellMixingEnsemble, fold
from ddpmseg.ensemble import train_ensemble
from ddpmseg.metrics import mean_iou
from ddpmseg.mlp import load_ensemble, predict_probabilities, split_ensemble
from ddpmseg.predict import predict_images

SETTINGS = dict(batch_size=64, lr=1e-3, max_epochs=3, early_stop_epoch=1, patience=50, min_class_pixels=1, buffer_mb=0.1,
                cache_mb=0.01)


def test_folded_ensemble_computes_what_the_mixing_ensemble_computes(tmp_path):
    """After training steps have moved every parameter and BatchNorm statistic, the folded plain
    ensemble over the concatenated features gives the eval-mode logits of the mixing ensemble,
    per member, and keeps each seed's mixing weights through split, save and load."""
    torch.manual_seed(0)
    model = CellMixingEnsemble([0, 3], n_members=2, cell_channels=[5, 3, 8], width=6, num_classes=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(20):
        x = torch.randn(4, 32, 16) * 3 + 1.5  # off-centre, off-scale features: the statistics matter
        loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, 4), torch.randint(0, 4, (4 * 32,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert not torch.allclose(model.cell_weights(), torch.full((4, 3), 1 / 3))  # the weights were trained
    x = torch.randn(4, 50, 16) * 3 + 1.5
    folded = fold(model)
    assert folded.in_features == 16 and folded.n_members == 4
    torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(folded.cell_weights.sum(dim=1), torch.ones(4))
    first, second = (part.eval() for part in split_ensemble(folded, 2))
    torch.testing.assert_close(second.cell_weights, model.cell_weights()[2:].detach())
    torch.save(second.state_dict(), tmp_path / "ensemble.pt")
    loaded = load_ensemble(tmp_path / "ensemble.pt")
    torch.testing.assert_close(loaded.cell_weights, second.cell_weights)
    pixels = torch.randn(30, 16)
    torch.testing.assert_close(predict_probabilities(loaded, pixels), predict_probabilities(second, pixels))


def test_learned_weights_pick_the_cell_that_carries_the_label(creatures32, tmp_path):
    """Three cells, one of them the real masks (noisy one-hot) and two pure noise at other
    resolutions: every member puts most weight on the informative cell, and segments the test
    images as well as reading the cells side by side does."""
    _, labels = creatures32
    rng = np.random.default_rng(0)
    one_hot = np.eye(8, dtype=np.float32)[np.minimum(labels, 7)].transpose(0, 3, 1, 2)
    cells = [rng.normal(0, 1, (12, 6, 16, 16)).astype(np.float32),
             one_hot + rng.normal(0, 0.2, one_hot.shape).astype(np.float32),
             rng.normal(0, 1, (12, 4, 8, 8)).astype(np.float32)]
    train, test = [], []
    for k, values in enumerate(cells):
        for split, part in ((train, values[:8]), (test, values[8:])):
            store = zarr.create_array(store=str(tmp_path / f"cell{k}-{len(split)}-{id(split)}"), shape=part.shape,
                                      chunks=(1, *part.shape[1:]), dtype="float16")
            store[:] = part
            split.append(store)
    (model,), history = train_ensemble(train, labels[:8], 7, 255, n_members=3, seeds=[0], aggregation="learned",
                                       aggregation_width=16, **SETTINGS)
    assert model.in_features == 6 + 8 + 4 and model.cell_weights.shape == (3, 3)
    assert (model.cell_weights.argmax(dim=1) == 1).all(), model.cell_weights
    assert history[-1]["mean_loss"] < 0.5 * history[0]["mean_loss"]
    [(majority, _, _)] = predict_images([model], test, 4, 32)
    assert mean_iou(majority, labels[8:], 7, 255) > 0.9
