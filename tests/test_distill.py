"""Distillation pieces: sampling from a seed, the uncertainty filter, DeepLab, folders to segment,
annotated folders and the paper's released synthetic datasets."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import TINY_FLAGS
from ddpmseg.datasets import prepare_folder
from ddpmseg.deeplab import build_deeplab, predict_deeplab, recalibrate_batchnorm, train_deeplab
from ddpmseg.diffusion import save_model
from ddpmseg.digests import folder_digest
from ddpmseg.distill import released_arrays, released_file, select_most_certain
from ddpmseg.errors import CheckpointError, DatasetError, UserError
from ddpmseg.sampling import sample_batch
from ddpmseg.segmenter import Segmenter


def test_samples_are_reproducible_from_seed_and_batch(tiny_model, tmp_path):
    model, _ = tiny_model  # random weights everywhere (guided-diffusion zero-initialises some)
    save_model(model, TINY_FLAGS, tmp_path / "model.pt", tmp_path / "flags.json")
    draw = lambda seed, batch: sample_batch(tmp_path / "model.pt", TINY_FLAGS, 2, seed, batch, "ddim4")  # noqa: E731
    first = draw(0, 0)
    assert first.shape == (2, 32, 32, 3) and first.dtype == np.uint8
    assert (draw(0, 0) == first).all()
    assert not (draw(0, 1) == first).all() and not (draw(1, 0) == first).all()
    assert not (first[0] == first[1]).all()  # the images of a batch differ
    ancestral = sample_batch(tmp_path / "model.pt", TINY_FLAGS, 2, 0, 0, "5")  # 5 respaced ancestral steps
    assert ancestral.shape == first.shape and not (ancestral == first).all()


def test_the_filter_drops_exactly_the_most_uncertain_portion():
    rng = np.random.default_rng(0)
    scores = pd.DataFrame({"image": [f"{i:03d}" for i in range(23)], "js_top10": rng.random(23)})
    scores.loc[5, "js_top10"] = scores.loc[6, "js_top10"]  # a tie, broken by name
    selection = select_most_certain(scores, 0.1)
    assert list(selection["image"]) == list(scores["image"])  # input order kept
    assert (~selection.kept).sum() == 2  # floor(0.1 x 23)
    dropped = set(selection.loc[~selection.kept, "image"])
    assert dropped == set(scores.nlargest(2, "js_top10")["image"])
    assert sorted(selection["rank"]) == list(range(23)) and selection.loc[5, "rank"] < selection.loc[6, "rank"]
    assert select_most_certain(scores, 0.0)["kept"].all()


def test_deeplab_learns_the_labels_of_its_images_and_round_trips_as_a_bundle(creatures32, tmp_path):
    images, labels = creatures32
    state, history, best_epoch = train_deeplab(
        images[:8], labels[:8], images[:8], labels[:8], num_classes=7, ignore_label=255,
        backbone="mobilenet_v3_large", batch_size=4, epochs=3, lr=3e-3, seed=0)
    assert [h["epoch"] for h in history] == [1, 2, 3] and history[-1]["mean_loss"] < history[0]["mean_loss"]
    assert best_epoch == max(history, key=lambda h: h["valid_miou"])["epoch"]
    segmenter = Segmenter.for_deeplab(state, backbone="mobilenet_v3_large", threads=1, classes=[str(c) for c in range(7)],
                                      ignore_label=255, image_size=32, non_square="error", resize="lanczos",
                                      provenance={})
    segmenter.save(tmp_path / "bundle")
    loaded = Segmenter.load(tmp_path / "bundle")
    model = build_deeplab("mobilenet_v3_large", 7)
    model.load_state_dict(state)
    expected, entropy = predict_deeplab(model, images[8:])
    labels_out, uncertainty = loaded.predict(images[8:])
    assert (labels_out == expected).all() and np.allclose(uncertainty, entropy)
    assert uncertainty.min() >= 0 and uncertainty.max() <= np.log(7) + 1e-5
    with pytest.raises(ValueError, match=r"images must be \(N, 32, 32, 3\) uint8"):
        loaded.predict(images[:, :16, :16])


def test_deeplab_at_a_larger_input_size_answers_at_the_image_size(creatures32, tmp_path):
    images, labels = creatures32
    state, history, _ = train_deeplab(
        images[:8], labels[:8], images[:8], labels[:8], num_classes=7, ignore_label=255,
        backbone="mobilenet_v3_large", batch_size=4, epochs=2, lr=3e-3, seed=0, input_size=64)
    assert len(history) == 2
    Segmenter.for_deeplab(state, backbone="mobilenet_v3_large", threads=1, classes=[str(c) for c in range(7)],
                          ignore_label=255, image_size=32, non_square="error", resize="lanczos", provenance={},
                          input_size=64).save(tmp_path / "bundle")
    loaded = Segmenter.load(tmp_path / "bundle")
    assert loaded.description["deeplab"]["input_size"] == 64
    model = build_deeplab("mobilenet_v3_large", 7)
    model.load_state_dict(state)
    upsampled, upsampled_entropy = predict_deeplab(model, images[8:], input_size=64)
    native, native_entropy = predict_deeplab(model, images[8:])
    labels_out, uncertainty = loaded.predict(images[8:])
    assert labels_out.shape == (len(images) - 8, 32, 32) and (labels_out == upsampled).all()
    assert np.allclose(uncertainty, upsampled_entropy) and not np.allclose(uncertainty, native_entropy)


def test_batchnorm_recalibration_averages_the_batch_statistics_of_the_training_images(creatures32):
    images, labels = creatures32
    model = build_deeplab("mobilenet_v3_large", 7, seed=0)
    first = model.backbone["0"][1]  # the stem's BatchNorm, after its convolution
    seen = []
    hook = first.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach()))
    recalibrate_batchnorm(model, images[:12], batch_size=4)  # 3 full batches
    hook.remove()
    assert len(seen) == 3 and first.momentum == 0.01  # torchvision's MobileNetV3 value, restored
    batch_means = torch.stack([x.mean(dim=(0, 2, 3)) for x in seen])
    batch_vars = torch.stack([x.var(dim=(0, 2, 3), unbiased=True) for x in seen])
    assert torch.allclose(first.running_mean, batch_means.mean(0), atol=1e-5)
    assert torch.allclose(first.running_var, batch_vars.mean(0), rtol=1e-4, atol=1e-6)
    state, _, _ = train_deeplab(images[:8], labels[:8], images[:8], labels[:8],
                                num_classes=7, ignore_label=255, backbone="mobilenet_v3_large", batch_size=4,
                                epochs=1, seed=0, recalibrate=True)
    plain, _, _ = train_deeplab(images[:8], labels[:8], images[:8], labels[:8],
                                num_classes=7, ignore_label=255, backbone="mobilenet_v3_large", batch_size=4,
                                epochs=1, seed=0)
    stem = "backbone.0.1."
    assert torch.equal(state[stem + "weight"], plain[stem + "weight"])  # the training itself is the same
    assert not torch.allclose(state[stem + "running_mean"], plain[stem + "running_mean"])


def test_deeplab_backbone_weights_in_torchvisions_layout(tmp_path):
    import torchvision

    torch.manual_seed(1)
    classifier = torchvision.models.mobilenet_v3_large(weights=None)
    torch.save(classifier.state_dict(), tmp_path / "mobilenet.pth")
    model = build_deeplab("mobilenet_v3_large", 5, tmp_path / "mobilenet.pth")
    assert torch.equal(model.backbone["0"][0].weight, classifier.features[0][0].weight)
    resnet = torchvision.models.resnet18(weights=None)
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(CheckpointError, match=r"resnet18\.pth: tensor .* needs"):
        build_deeplab("resnet50", 5, tmp_path / "resnet18.pth")


def test_a_folder_to_segment_is_validated_and_prepared_like_a_split(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / "sub" / "b.jpg")
    digest = folder_digest(folder)
    prepare_folder(folder, tmp_path / "out.zarr", 32, "photos", ["bg", "fg"], 255)
    import zarr

    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    assert group["images"].shape == (2, 32, 32, 3) and group.attrs["image_ids"] == ["a", "sub/b"]
    assert group.attrs["split"] == "segment-photos" and group.attrs["classes"] == ["bg", "fg"]
    (folder / "broken.png").write_bytes(b"not an image")
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(folder / "wide.png")
    assert folder_digest(folder) != digest
    with pytest.raises(DatasetError) as error:
        prepare_folder(folder, tmp_path / "again.zarr", 32, "photos", ["bg", "fg"], 255)
    assert {p.split(":")[0] for p in error.value.problems} == {str(folder / "broken.png"), str(folder / "wide.png")}
    assert not (tmp_path / "again.zarr").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        prepare_folder(tmp_path / "empty", tmp_path / "none.zarr", 32, "photos", ["bg"], 255)


def test_an_annotated_folder_is_prepared_with_its_labels_and_every_bad_label_listed(creatures32, tmp_path):
    import zarr

    images, labels = creatures32
    folder = tmp_path / "ddpm"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(images[i]).save(folder / f"{i}.png")
        np.save(folder / f"{i}.npy", labels[i])
    prepare_folder(folder, tmp_path / "ddpm.zarr", 32, "ddpm", [str(c) for c in range(7)], 255, kind="annotated")
    group = zarr.open_group(tmp_path / "ddpm.zarr", mode="r")
    assert group.attrs["split"] == "annotated-ddpm" and (group["labels"][:] == labels[:3]).all()
    assert (group["images"][:] == images[:3]).all()
    (folder / "1.npy").unlink()
    np.save(folder / "2.npy", np.full((32, 32), 9, np.uint8))  # class 9 of 7
    with pytest.raises(DatasetError) as error:
        prepare_folder(folder, tmp_path / "again.zarr", 32, "ddpm", [str(c) for c in range(7)], 255, kind="annotated")
    assert [p.split(":")[0] for p in error.value.problems] == [str(folder / "1.npy"), str(folder / "2.npy")]
    assert "label file missing" in error.value.problems[0] and "outside 0..6" in error.value.problems[1]
    assert not (tmp_path / "again.zarr").exists()


def test_a_released_synthetic_npz_is_read_row_by_row_and_a_wrong_one_named(creatures32, tmp_path):
    images, labels = creatures32
    scores = np.linspace(0, 1, len(images))
    np.savez(tmp_path / "samples.npz", images, labels, scores)
    (tmp_path / "unpacked" / "inner").mkdir(parents=True)
    np.savez(tmp_path / "unpacked" / "inner" / "gan.npz", images, labels, np.zeros((len(images), 8)), scores)  # + latents
    for given in (tmp_path / "samples.npz", tmp_path / "unpacked"):
        with released_arrays(released_file(given)) as arrays:
            assert arrays["images"].shape == images.shape and arrays["labels"].dtype == np.uint8
            assert all((row == image).all() for row, image in zip(arrays["images"].rows(), images))
            assert (np.stack(list(arrays["labels"].rows())) == labels).all()
            assert (arrays["uncertainty"].read_all() == scores).all()
    np.savez(tmp_path / "unpacked" / "second.npz", images)
    with pytest.raises(UserError, match=r"unpacked: holds 2 \.npz files"):
        released_file(tmp_path / "unpacked")
    np.savez(tmp_path / "float.npz", images.astype(np.float32), labels, scores)
    with pytest.raises(UserError, match=r"float\.npz: arr_0\.npy \(images\) is float32"):
        with released_arrays(tmp_path / "float.npz"):
            pass
    np.savez(tmp_path / "two.npz", images, labels)
    with pytest.raises(UserError, match="holds 2 arrays"):
        with released_arrays(tmp_path / "two.npz"):
            pass
