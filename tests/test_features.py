import numpy as np
import pytest
import torch
import torch.nn.functional as F
import zarr

from conftest import TINY_FLAGS, adm_stores, control_store
from ddpmseg import backbones
from ddpmseg.backbones import adm
from ddpmseg.backbones.adm import decoder_activations
from ddpmseg.methods import MethodPlan
from ddpmseg.model_input import batch_noise, model_input, shared_noise
from ddpmseg.stores import native_maps, open_store, sample_pixel_features


def test_early_exit_matches_hooks_on_the_full_forward(tiny_model):
    """Our stopped forward gives exactly what forward hooks on the full model record."""
    model, _ = tiny_model
    x = torch.randn(3, 3, 32, 32)
    t = torch.tensor([5, 20, 60])
    recorded = {}
    hooks = [
        model.output_blocks[b].register_forward_hook(lambda m, i, o, b=b: recorded.__setitem__(b, o.float()))
        for b in (1, 2)
    ]
    with torch.no_grad():
        model(x, t)
    for hook in hooks:
        hook.remove()
    ours = decoder_activations(model, x, t, [1, 2])
    assert set(ours) == {1, 2}
    for b in (1, 2):
        torch.testing.assert_close(ours[b], recorded[b])


def test_stores_native_resolution_float16_with_attrs(tiny_model, creatures32, tmp_path):
    model, diffusion = tiny_model
    images = creatures32[0][:5]
    paths = adm_stores(model, diffusion, images, tmp_path, blocks=[0, 3], timesteps=[5, 50], batch_images=2)
    assert [p.name for p in paths] == [backbones.store_name(f"b{b}", t) for b in (0, 3) for t in (5, 50)]
    deep = open_store(str(tmp_path / "features_b0_t5.zarr"))
    shallow = open_store(str(tmp_path / "features_b3_t50.zarr"))
    assert deep.shape == (5, 64, 16, 16) and shallow.shape == (5, 32, 32, 32)  # native, not upsampled
    assert deep.dtype == np.float16 and deep.chunks == (1, 64, 16, 16)
    assert deep.metadata.dimension_names == ("image", "channel", "y", "x")
    assert deep.attrs["layer"] == "b0" and deep.attrs["timestep"] == 5 and deep.attrs["image_ids"][4] == 4
    assert deep.attrs["source"] == "adm" and deep.attrs["noise_seed"] == 0 and deep.attrs["normalisation"] == "[-1, 1]"
    # image 3 on its own, with the shared noise, gives the stored values (batching changes nothing)
    noise = shared_noise(32, 0)
    x0 = torch.from_numpy(images[3:4]).permute(0, 3, 1, 2).float() / 127.5 - 1
    t = torch.tensor([50])
    expected = decoder_activations(model, diffusion.q_sample(x0, t, noise=noise), t, [3])[3][0].numpy()
    np.testing.assert_allclose(shallow[3].astype(np.float32), expected, atol=2e-3 * np.abs(expected).max())
    assert np.abs(shallow[3].astype(np.float32) - shallow[2].astype(np.float32)).max() > 0


def test_shared_noise_is_fixed_by_seed():
    torch.testing.assert_close(shared_noise(8, 0), shared_noise(8, 0))
    assert not torch.equal(shared_noise(8, 0), shared_noise(8, 1))


def test_control_features(creatures32, tmp_path):
    images = creatures32[0][:2]
    x = model_input(images, "[-1, 1]")
    [pixels] = backbones.source("pixels").activations(None, x, ["pixels"]).values()
    [patch] = backbones.source("patch").activations(None, x, ["patch"]).values()
    assert pixels.shape == (2, 5, 32, 32) and patch.shape == (2, 77, 32, 32)
    np.testing.assert_allclose(pixels[1, :3, 4, 7], images[1, 4, 7] / 127.5 - 1, atol=1e-6)
    assert pixels[0, 3, 0, 0] == -1 and pixels[0, 3, 0, -1] == 1  # x runs left to right
    # the centre of the 5x5 patch is the pixel itself
    np.testing.assert_allclose(patch[1, [12, 37, 62], 10, 10], pixels[1, :3, 10, 10], atol=1e-6)
    store = control_store(images, "patch", tmp_path)
    assert store.shape == (2, 77, 32, 32) and store.attrs["layer"] == "patch" and store.attrs["timestep"] is None
    np.testing.assert_array_equal(store[1], patch[1].numpy().astype(np.float16))


def test_imagenet_normalisation_is_torchvisions():
    """MAE and SwAV see u / 255 normalised with the ImageNet mean and std (ToTensor + Normalize)."""
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    expected = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) \
        / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    torch.testing.assert_close(model_input(images, "imagenet"), expected)
    torch.testing.assert_close(model_input(images, "[0, 1]"), torch.from_numpy(images).permute(0, 3, 1, 2) / 255)
    with pytest.raises(ValueError, match="unknown normalisation"):
        model_input(images, "[0, 255]")


def test_adm_layer_table_agrees_with_the_activations(tiny_model):
    """The layer table from the flags alone gives the channels and resolutions of the real maps."""
    model, diffusion = tiny_model
    table = adm.layer_table({"flags": TINY_FLAGS}, 32)
    x = torch.zeros(1, 3, 32, 32)
    maps = adm.activations(adm.adm_parts(model, diffusion, TINY_FLAGS), x, list(table), [5], torch.zeros(1, 3, 32, 32))
    assert {layer: (m.shape[1], m.shape[2]) for (layer, _), m in maps.items()} == table



def test_the_adm_builds_one_module_and_its_identity_leaves_the_datasets_settings_out():
    """`build` gives an nn.Module holding the UNet (its weights seen by state_dict and an export),
    the diffusion and the full flags; the stores' identity has the method's own settings only."""
    from ddpmseg.features import build_method_model

    settings = {"weights": "random", "layers": ["b0"], "timesteps": [5], "flags": TINY_FLAGS, "blocks": [0]}
    plan = MethodPlan(key="unet_untrained", name="UNet (untrained)", source="adm", settings=settings)
    model, table, identity = build_method_model(plan, 32, None, "cpu", 3)
    assert isinstance(model, torch.nn.Module) and not model.training and model.flags["num_channels"] == 32
    assert all(key.startswith("unet.") for key in model.state_dict()) and model.diffusion.num_timesteps == 100
    assert identity["settings"] == {"weights": "random", "layers": ["b0"], "timesteps": [5]}
    assert identity["model_flags"] == model.flags and table == adm.layer_table({"flags": model.flags}, 32)
    assert adm.noise_shape(model, 32) == (3, 32, 32)

def test_pixel_features_upsample_and_concatenate(tmp_path):
    low = zarr.create_array(store=str(tmp_path / "low.zarr"), shape=(2, 1, 2, 2), chunks=(1, 1, 2, 2), dtype="float16")
    low[:] = np.arange(8, dtype=np.float16).reshape(2, 1, 2, 2)
    full = zarr.create_array(store=str(tmp_path / "full.zarr"), shape=(2, 3, 4, 4), chunks=(1, 3, 4, 4), dtype="float16")
    full[:] = 1.0
    features = torch.empty(16, 4)
    sample_pixel_features(native_maps([low, full], 1), torch.arange(16), 4, features)
    features = features.T.reshape(4, 4, 4)
    assert features[0, 0, 0] == 4.0 and features[0, -1, -1] == 7.0  # corners of bilinear, align_corners=False
    assert features[0, 0, 1] == 4.25 and torch.all(features[1:] == 1.0)


@pytest.mark.parametrize("native, size", [(8, 256), (32, 256), (128, 256), (12, 48), (24, 48), (7, 30), (48, 48)])
def test_sampled_pixels_equal_the_papers_full_upsampling(native, size):
    """Bilinear samples at chosen pixels equal F.interpolate of the whole map (the paper's route)."""
    fmap = torch.randn(5, native, native).half()
    full = F.interpolate(fmap.float()[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    pixels = torch.from_numpy(np.random.default_rng(native).choice(size * size, 500, replace=False))
    out = torch.empty(500, 5)
    sample_pixel_features([fmap.permute(1, 2, 0).contiguous()], pixels, size, out)
    torch.testing.assert_close(out, full.reshape(5, -1)[:, pixels].T, rtol=0, atol=1e-6)


@pytest.mark.parametrize("precision", ["float32", "float16"])
def test_extracted_features_equal_the_paper_extractor_bit_for_bit(creatures32, tmp_path, precision):
    """The paper's route (benchmarks/paper_path.py: ToTensor input, share_noise, hooks on a full
    forward at batch 1) and our stores hold the same values, bit for bit before float16 storage;
    with the UNet in float16 as the paper runs it, too. A channels-last input broke this."""
    import sys
    from pathlib import Path

    from ddpmseg.diffusion import build_model_and_diffusion, randomize_weights
    from ddpmseg.model_input import images_to_model_input

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from paper_path import PaperFeatureExtractor, paper_input, paper_noise

    model, diffusion = build_model_and_diffusion(TINY_FLAGS)
    randomize_weights(model, seed=1)
    if precision == "float16":
        model.convert_to_fp16()
        model.dtype = torch.float16
    image, blocks, step = creatures32[0][4], [1, 2], 20
    torch.testing.assert_close(images_to_model_input(image[None]), paper_input(image), rtol=0, atol=0)
    assert images_to_model_input(image[None]).is_contiguous()
    paper = PaperFeatureExtractor(model, diffusion, blocks, [step], paper_noise(32, 0))(paper_input(image))
    t = torch.tensor([step])
    x_t = diffusion.q_sample(images_to_model_input(image[None]), t, noise=shared_noise(32, 0))
    ours = decoder_activations(model, x_t, t, blocks)
    for block, theirs in zip(blocks, paper):
        assert torch.equal(ours[block], theirs), f"block {block}: max difference {(ours[block] - theirs).abs().max()}"
    paths = adm_stores(model, diffusion, image[None], tmp_path, blocks=blocks, timesteps=[step])
    for path, theirs in zip(paths, paper):
        stored = zarr.open_group(str(path), mode="r")["features"][0]
        np.testing.assert_array_equal(stored, theirs[0].numpy().astype(np.float16))


def test_noise_modes_share_what_they_say_and_do_not_depend_on_the_batching():
    shared = batch_noise("shared", 8, 3, "cpu", range(2), [5, 20])
    assert shared.shape == (1, 3, 8, 8) and torch.equal(shared, shared_noise(8, 3))
    per_t = batch_noise("per_timestep", 8, 3, "cpu", range(2), [5, 20])  # (image 0, t 5), (0, 20), (1, 5), (1, 20)
    assert per_t.shape == (4, 3, 8, 8) and torch.equal(per_t[0], per_t[2]) and not torch.equal(per_t[0], per_t[1])
    assert torch.equal(per_t[1], batch_noise("per_timestep", 8, 3, "cpu", [7], [20])[0])  # one t, another image
    fresh = batch_noise("per_image", 8, 3, "cpu", range(4), [5, 20])
    assert len({tuple(row.flatten()[:4].tolist()) for row in fresh}) == 8  # every (image, timestep) its own
    assert torch.equal(fresh[6:], batch_noise("per_image", 8, 3, "cpu", [3], [5, 20]))  # image 3 alone: the same
    assert not torch.equal(fresh, batch_noise("per_image", 8, 4, "cpu", range(4), [5, 20]))  # another seed
