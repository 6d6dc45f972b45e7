import numpy as np
import pytest
import torch
import torch.nn.functional as F
import zarr

from conftest import control_store
from ddpmseg.ensemble import PixelStream, relabel_rare_classes, train_ensemble
from ddpmseg.metrics import mean_iou
from ddpmseg.mlp import BatchedMLPEnsemble, load_ensemble, predict_probabilities, split_ensemble, stack_ensembles
from ddpmseg.predict import predict_images

SETTINGS = dict(batch_size=64, lr=1e-3, max_epochs=3, early_stop_epoch=1, patience=50, min_class_pixels=20, buffer_mb=0.1,
                cache_mb=0.01)


def test_rare_classes_become_ignore():
    labels = np.zeros((2, 10, 10), np.uint8)
    labels[0, :2, :5] = 3  # 10 pixels of class 3 in image 0: below 20
    labels[1, :5, :5] = 3  # 25 pixels in image 1: kept
    labels[1, 9, 9] = 255
    out = relabel_rare_classes(labels, 255, 20)
    assert np.all(out[0, :2, :5] == 255) and np.all(out[1, :5, :5] == 3) and out[1, 9, 9] == 255
    assert np.all(labels[0, :2, :5] == 3)  # input untouched


def test_a_small_labelled_region_survives_the_rare_class_rule():
    """A partly labelled image: a 6-pixel region of class 4 on its own (ignore around it) stays,
    and so does a 6-pixel region of class 3 at the image's edge; the same 6 pixels of class 2
    inside a region of class 1 (a sliver, as a whole mask's noise) go."""
    labels = np.full((1, 12, 12), 255, np.uint8)
    labels[0, 1:3, 1:4] = 4            # a region of its own: 6 pixels
    labels[0, 10:12, 0:3] = 3          # one at the edge
    labels[0, 5:12, 5:12] = 1          # 49 - 6 pixels of class 1 ...
    labels[0, 5:7, 5:8] = 2            # ... around 6 of class 2
    out = relabel_rare_classes(labels, 255, 20)
    assert np.all(out[0, 1:3, 1:4] == 4) and np.all(out[0, 10:12, 0:3] == 3)
    assert np.all(out[0, 5:7, 5:8] == 255) and np.count_nonzero(out[0] == 1) == 43


def test_stream_buffers_are_random_shares_of_every_image_equal_to_full_upsampling(tmp_path):
    """Each epoch visits every labelled pixel once, spread over buffers that each draw from
    every image; the features equal the paper's route (upsample the whole map, then pick)."""
    n, size = 6, 16
    rng = np.random.default_rng(0)
    low = rng.normal(size=(n, 3, 4, 4)).astype(np.float16)   # upsampled 4x on the fly
    full = rng.normal(size=(n, 2, size, size)).astype(np.float16)  # already at label resolution
    stores = []
    for name, values in (("low", low), ("full", full)):
        store = zarr.create_array(store=str(tmp_path / f"{name}.zarr"), shape=values.shape,
                                  chunks=(1, *values.shape[1:]), dtype="float16")
        store[:] = values
        stores.append(store)
    labels = rng.integers(0, 4, (n, size, size)).astype(np.uint8)
    labels[:, 0, :] = 255
    upsampled = [F.interpolate(torch.from_numpy(v).float(), size=(size, size), mode="bilinear", align_corners=False)
                 for v in (low, full)]  # the paper's route: every map upsampled whole
    reference = torch.cat(upsampled, dim=1).permute(0, 2, 3, 1).reshape(-1, 5)
    keep = torch.from_numpy(labels.reshape(-1) != 255)
    # 120 pixels a buffer: 12 buffers for the 1440 labelled pixels; 2 of 6 images' maps cached
    stream = PixelStream(stores, labels, 255, buffer_pixels=120, cache_images=2, rng=np.random.default_rng(1))
    assert stream.n_buffers == 12
    for _ in range(2):  # buffers are reused across epochs
        buffers = [(f.clone(), y.clone()) for f, y in stream.epoch()]
        assert len(buffers) == 12 and all(len(y) == 120 for _, y in buffers)
        seen = torch.cat([f for f, _ in buffers])
        # each buffer mixes all 6 images: identify a pixel's image by its exact features
        owner = {tuple(row.tolist()): i for i in range(n) for row in reference.reshape(n, -1, 5)[i]}
        for features, _ in buffers:
            assert len({owner[tuple(row.tolist())] for row in features}) == n
        order_seen, order_ref = np.lexsort(seen.T.numpy()[::-1]), np.lexsort(reference[keep].T.numpy()[::-1])
        torch.testing.assert_close(seen[order_seen], reference[keep][order_ref], rtol=0, atol=1e-6)
        labels_seen = torch.cat([y for _, y in buffers])[order_seen]
        torch.testing.assert_close(labels_seen, torch.from_numpy(labels.reshape(-1)[keep.numpy()].astype(np.int64))[order_ref])
    assert sorted(stream.cache) == [(0, 0), (0, 1)]  # (draw, image)


def test_with_noise_draws_each_buffer_reads_one_draw_and_all_draws_are_read(tmp_path):
    """Table 5's fresh noise: a buffer's pixels all come from one extraction of the features."""
    rng = np.random.default_rng(0)
    n, size = 4, 8
    base = rng.normal(size=(n, 3, size, size)).astype(np.float16)
    draws = []
    for k in range(3):  # draw k: the same maps shifted by 100 k, so a pixel tells its draw
        store = zarr.create_array(store=str(tmp_path / f"draw{k}.zarr"), shape=base.shape, chunks=(1, 3, size, size),
                                  dtype="float16")
        store[:] = base + 100 * k
        draws.append([store])
    labels = rng.integers(0, 3, (n, size, size)).astype(np.uint8)
    stream = PixelStream(draws[0], labels, 255, buffer_pixels=32, cache_images=3, rng=np.random.default_rng(1),
                         draws=draws[1:])
    assert stream.n_buffers == 8 and stream.cache_images == 1  # the cache budget shared by the 3 draws
    used = []
    for _ in range(3):
        for features, _ in stream.epoch():
            draw = np.rint(features[:, 0].numpy() / 100).astype(int)  # |base| < 50
            assert len(set(draw)) == 1
            used.append(draw[0])
    assert set(used) == {0, 1, 2}
    assert sorted(stream.cache) == [(k, 0) for k in sorted(set(used))]


@pytest.fixture(scope="module")
def patch_stores(creatures32, tmp_path_factory):
    images, labels = creatures32
    root = tmp_path_factory.mktemp("patch")
    return control_store(images[:8], "patch", root / "train"), control_store(images[8:], "patch", root / "test")


def test_training_learns_real_labels_and_stops_by_the_rule(creatures32, tmp_path):
    """Features that carry the label (noisy one-hot at half resolution, upsampled on the fly)
    must be learned almost perfectly; the predictions then reproduce the real masks."""
    _, labels = creatures32
    rng = np.random.default_rng(0)
    one_hot = np.eye(8, dtype=np.float32)[np.minimum(labels, 7)].transpose(0, 3, 1, 2)  # (12, 8, 32, 32)
    noisy = one_hot + rng.normal(0, 0.2, one_hot.shape).astype(np.float32)
    stores = []
    for name, part in (("train", noisy[:8]), ("test", noisy[8:])):
        store = zarr.create_array(store=str(tmp_path / name), shape=part.shape, chunks=(1, *part.shape[1:]), dtype="float16")
        store[:] = part
        stores.append(store)
    # at 32x32 eyes and ears have fewer than 20 pixels: keep them (min_class_pixels=1) to score all classes
    settings = {**SETTINGS, "min_class_pixels": 1}
    (model,), history = train_ensemble([stores[0]], labels[:8], 7, 255, n_members=4, seeds=[0], **settings)
    assert history[-1]["mean_loss"] < 0.5 * history[0]["mean_loss"]
    assert history[-1]["members_active"] == 0 or len(history) == SETTINGS["max_epochs"]
    [(majority, soft, uncertainty)] = predict_images([model], [stores[1]], 4, 32)
    assert majority.shape == (4, 32, 32) and uncertainty.min() >= -1e-6
    assert mean_iou(majority, labels[8:], 7, 255) > 0.9
    assert mean_iou(soft, labels[8:], 7, 255) > 0.9
    torch.save(model.state_dict(), tmp_path / "ensemble.pt")
    loaded = load_ensemble(tmp_path / "ensemble.pt")
    x = torch.randn(50, 8)
    torch.testing.assert_close(predict_probabilities(loaded, x), predict_probabilities(model, x))
    # the members' first layers as one matrix product equal each member on its own
    each = torch.softmax(model(x.unsqueeze(0).expand(model.n_members, -1, -1)), dim=-1)
    torch.testing.assert_close(predict_probabilities(model, x, chunk=16), each, rtol=1e-5, atol=1e-6)


def test_same_seed_same_model_and_stopped_members_stay_frozen(creatures32, patch_stores):
    _, labels = creatures32
    train, _ = patch_stores
    settings = {**SETTINGS, "early_stop_epoch": 0, "patience": 3, "max_epochs": 2}
    (a,), history = train_ensemble([train], labels[:8], 7, 255, n_members=2, seeds=[1], **settings)
    (b,), _ = train_ensemble([train], labels[:8], 7, 255, n_members=2, seeds=[1], **settings)
    torch.testing.assert_close(a.weight0, b.weight0)
    assert history[-1]["members_active"] == 0  # patience 3 stops every member early
    assert history[-1]["batches"] < 8 * 32 * 32 // 64  # well before the end of the first epoch


def test_seeds_trained_together_are_separate_ensembles(creatures32, patch_stores):
    """Each seed's ensemble starts from its own seed's initialisation and has its own history
    rows; predicting with several ensembles gives each the masks it gives alone."""
    _, labels = creatures32
    train, test = patch_stores
    settings = {**SETTINGS, "max_epochs": 1}
    models, history = train_ensemble([train], labels[:8], 7, 255, n_members=3, seeds=[4, 7], **settings)
    assert [m.n_members for m in models] == [3, 3]
    assert [(row["seed"], row["epoch"]) for row in history] == [(4, 0), (7, 0)]
    assert all(np.isfinite(row["mean_loss"]) and row["members_active"] == 3 for row in history)
    untrained = stack_ensembles([BatchedMLPEnsemble(3, 77, 7, seed=4), BatchedMLPEnsemble(3, 77, 7, seed=7)])
    for part, fresh in zip(split_ensemble(untrained, 2), (BatchedMLPEnsemble(3, 77, 7, seed=4), BatchedMLPEnsemble(3, 77, 7, seed=7))):
        torch.testing.assert_close(part.weight0, fresh.weight0)
    assert not torch.allclose(models[0].weight0, models[1].weight0)
    both = predict_images(models, [test], 4, 32)
    alone = predict_images(models[1:], [test], 4, 32)
    np.testing.assert_array_equal(both[1][0], alone[0][0])
