"""The MAE feature source: the paper's ViT-L/8 layout, early exit, the paper's shuffled route,
checkpoint errors, pretraining, and an import without torch."""

import logging

import jsonschema
import numpy as np
import pytest
import torch

from conftest import heavy_modules_imported
from ddpmseg.backbones import mae
from ddpmseg import methods
from ddpmseg.errors import CheckpointError

PAPER_ARCH = dict(patch_size=8, embed_dim=1024, depth=24, num_heads=16, mlp_ratio=4.0)  # FeatureExtractorMAE


def with_defaults(instance: dict) -> dict:
    """`instance` validated against mae.SETTINGS, every missing default filled in (as the workflow does)."""
    instance = methods.with_defaults(mae.SETTINGS, instance)
    jsonschema.validate(instance, mae.SETTINGS)
    return instance


def settings(arch=None, **train) -> dict:
    return with_defaults({"arch": arch or {}, "train": train})


def official_encoder_keys(depth: int) -> set:
    """MaskedAutoencoderViT's encoder tensor names (facebookresearch/mae models_mae.py)."""
    keys = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias"}
    for i in range(depth):
        for part in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            keys |= {f"blocks.{i}.{part}.weight", f"blocks.{i}.{part}.bias"}
    return keys


def official_decoder_state(embed_dim, num_patches, patch_size, dim=512, depth=8, heads=16) -> dict:
    """Zero tensors named and shaped as MaskedAutoencoderViT's decoder (the paper's 512/8/16)."""
    from timm.models.vision_transformer import Block

    decoder = torch.nn.Module()
    decoder.decoder_embed = torch.nn.Linear(embed_dim, dim)
    decoder.decoder_blocks = torch.nn.ModuleList([Block(dim, heads, 4.0, qkv_bias=True) for _ in range(depth)])
    decoder.decoder_norm = torch.nn.LayerNorm(dim, eps=1e-6)
    decoder.decoder_pred = torch.nn.Linear(dim, patch_size**2 * 3)
    state = {key: torch.zeros(value.shape) for key, value in decoder.state_dict().items()}
    return {**state, "mask_token": torch.zeros(1, 1, dim), "decoder_pos_embed": torch.zeros(1, 1 + num_patches, dim)}


def test_settings_schema_defaults_and_layer_table():
    jsonschema.Draft202012Validator.check_schema(mae.SETTINGS)

    def check_documented(properties):
        for name, schema in properties.items():
            assert "default" in schema and schema.get("description"), name
            check_documented(schema.get("properties", {}))

    check_documented(mae.SETTINGS["properties"])
    defaults = with_defaults({})
    assert defaults["checkpoint"] is None and defaults["layers"] is None
    assert defaults["arch"] == dict(patch_size=4, embed_dim=192, depth=6, num_heads=3, mlp_ratio=4.0)
    assert defaults["train"]["max_steps"] == 1000 and defaults["train"]["mask_ratio"] == 0.75
    with pytest.raises(jsonschema.ValidationError, match="patch_sise"):
        with_defaults({"arch": {"patch_sise": 4}})
    with pytest.raises(jsonschema.ValidationError):
        with_defaults({"train": {"max_minutes": 0}})
    assert mae.layer_table(defaults, 64) == {f"block{i}": (192, 16) for i in range(6)}
    assert mae.default_layers(defaults, 64) == ["block3", "block4", "block5"]
    with pytest.raises(ValueError, match="arch.patch_size 4 does not divide the image size 62"):
        mae.layer_table(defaults, 62)


def test_paper_vit_large_official_checkpoint(tmp_path):
    """The paper's ViT-L/8 at 256: 303.6M encoder parameters, 24 layers of 1024 @ 32x32, the
    last 12 by default (12288 features a pixel), loaded from the official checkpoint layout."""
    paper = settings(PAPER_ARCH)
    table = mae.layer_table(paper, 256)
    assert list(table) == [f"block{i}" for i in range(24)] and set(table.values()) == {(1024, 32)}
    layers = mae.default_layers(paper, 256)
    assert layers == [f"block{i}" for i in range(12, 24)]
    assert sum(table[layer][0] for layer in layers) == 12288

    with torch.device("meta"):
        encoder = mae._encoder(PAPER_ARCH, 256)
    assert 300e6 < sum(p.numel() for p in encoder.parameters()) < 306e6
    assert set(encoder.state_dict()) == official_encoder_keys(24)
    generator = torch.Generator().manual_seed(0)
    state = {key: torch.empty(value.shape).uniform_(-0.03, 0.03, generator=generator)  # randn: 4x slower
             for key, value in encoder.state_dict().items()}
    path = tmp_path / "mae_vit_large_patch8_256.pth"
    torch.save({"model": {**state, **official_decoder_state(1024, 32 * 32, 8)}}, path)
    del encoder

    model = mae.build(paper, 256, path, "cpu", seed=0)
    assert torch.equal(model.blocks[23].mlp.fc2.weight, state["blocks.23.mlp.fc2.weight"])
    del state
    x = torch.randn(1, 3, 256, 256, generator=generator)
    maps = mae.activations(model, x, layers)
    assert list(maps) == [(layer, None) for layer in layers]
    assert all(m.shape == (1, 1024, 32, 32) and m.dtype == torch.float32 for m in maps.values())
    assert sum(m.shape[1] for m in maps.values()) == 12288
    assert all(torch.isfinite(m).all() for m in maps.values())


@pytest.fixture(scope="module")
def small():
    """(settings, random-weight encoder, ImageNet-normalised batch (2, 3, 64, 64)) of the default arch."""
    defaults = settings()
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    from ddpmseg.model_input import model_input

    return defaults, mae.build(defaults, 64, None, "cpu", seed=3), model_input(images, "imagenet")


def test_early_exit_equals_full_forward(small):
    defaults, model, x = small
    full = model.forward_intermediates(x, indices=list(range(6)), output_fmt="NCHW", intermediates_only=True)
    ran = []
    hooks = [block.register_forward_hook(lambda *_, i=i: ran.append(i)) for i, block in enumerate(model.blocks)]
    maps = mae.activations(model, x, ["block3", "block1"])
    for hook in hooks:
        hook.remove()
    assert ran == [0, 1, 2, 3]  # blocks 4 and 5 are not run
    assert list(maps) == [("block1", None), ("block3", None)]  # forward order
    assert torch.equal(maps["block1", None], full[1]) and torch.equal(maps["block3", None], full[3])
    with pytest.raises(ValueError, match="block6"):
        mae.activations(model, x, ["block6"])


def test_paper_route_shuffled_tokens_give_the_same_maps(small):
    """MaskedAutoencoderViT.forward_encoder(x, mask_ratio=0) and FeatureExtractorMAE's hooks,
    re-implemented: the tokens run in a random order, then restored with ids_restore."""
    defaults, model, x = small
    layers = mae.default_layers(defaults, 64)
    hooked = {}
    hooks = [model.blocks[int(layer.removeprefix("block"))].register_forward_hook(
        lambda module, inputs, output, layer=layer: hooked.__setitem__(layer, output)) for layer in layers]
    with torch.no_grad():
        tokens = model.patch_embed(x) + model.pos_embed[:, 1:]
        batch, length, dim = tokens.shape
        noise = torch.rand(batch, length, generator=torch.Generator().manual_seed(1))
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        tokens = torch.gather(tokens, 1, ids_shuffle[:, :, None].expand(-1, -1, dim))  # keep all: mask ratio 0
        cls = (model.cls_token + model.pos_embed[:, :1]).expand(batch, -1, -1)
        tokens = torch.cat([cls, tokens], dim=1)
        for block in model.blocks:
            tokens = block(tokens)
    for hook in hooks:
        hook.remove()
    assert not torch.equal(ids_shuffle, ids_restore)
    maps = mae.activations(model, x, layers)
    for layer in layers:
        restored = torch.gather(hooked[layer][:, 1:], 1, ids_restore[:, :, None].expand(-1, -1, dim))
        paper = restored.permute(0, 2, 1).reshape(batch, dim, 16, 16)
        torch.testing.assert_close(maps[layer, None], paper, atol=1e-4, rtol=1e-4)


def test_checkpoint_of_another_architecture_or_garbage_fails(tmp_path, small):
    defaults, _, _ = small
    wider = settings({"embed_dim": 256, "num_heads": 4})
    path = tmp_path / "wider.pth"
    torch.save({"model": mae.build(wider, 64, None, "cpu", seed=0).state_dict()}, path)
    with pytest.raises(CheckpointError) as error:
        mae.build(defaults, 64, path, "cpu", seed=0)
    message = str(error.value)
    assert str(path) in message and "'cls_token' is (1, 1, 256) in the checkpoint" in message
    assert "the settings build (1, 1, 192)" in message
    assert "arch.embed_dim (the checkpoint's shapes say 256, the settings say 192)" in message
    assert "arch.depth" not in message and "image size" not in message

    with pytest.raises(CheckpointError, match=r"arch.patch_size \(the checkpoint's shapes say 4, the settings say 8"):
        mae.build(settings({"patch_size": 8}), 64, path, "cpu", seed=0)
    with pytest.raises(CheckpointError, match="its pos_embed is for 64x64 images, the dataset's are 32x32"):
        mae.build(settings({"embed_dim": 256, "num_heads": 4}), 32, path, "cpu", seed=0)

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pth"):
        mae.build(defaults, 64, garbage, "cpu", seed=0)


def test_pretrain_deterministic_loadable_and_time_guard(tmp_path, caplog):
    tiny = settings({"embed_dim": 64, "depth": 2, "num_heads": 2}, max_steps=6, batch_size=8, lr=1e-3, log_every=2,
                    decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, seed=5)
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    checkpoint, rows, outcome = mae.pretrain(tiny, images, "cpu")
    again, rows_again, _ = mae.pretrain(tiny, images, "cpu")

    state = checkpoint["model"]
    assert state.keys() == again["model"].keys()
    assert all(torch.equal(state[key], again["model"][key]) for key in state)
    assert [row["loss"] for row in rows] == [row["loss"] for row in rows_again]
    assert [row["step"] for row in rows] == [2, 4, 6] and all(np.isfinite(row["loss"]) for row in rows)
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert outcome == dict(steps=6, max_steps=6, max_minutes=None, stopped_by="max_steps",
                           seconds=outcome["seconds"], seed=5, torch_threads=torch.get_num_threads())
    decoder_keys = {key for key in state if key.startswith(("decoder", "mask_token"))}
    assert set(state) - decoder_keys == official_encoder_keys(2)
    official = official_decoder_state(64, 8 * 8, 4, dim=32, depth=1, heads=2)  # MaskedAutoencoderViT's decoder
    assert {key: tuple(state[key].shape) for key in decoder_keys} == {k: tuple(v.shape) for k, v in official.items()}

    path = tmp_path / "pretrained.pth"
    torch.save(checkpoint, path)
    model = mae.build(tiny, 32, path, "cpu", seed=0)
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())

    with caplog.at_level(logging.WARNING, logger="ddpmseg.backbones.mae"):
        _, rows, outcome = mae.pretrain(settings(tiny["arch"], **{**tiny["train"], "max_minutes": 1e-6}), images,
                                        "cpu")
    assert outcome["steps"] == 1 and outcome["stopped_by"] == "max_minutes" and [r["step"] for r in rows] == [1]
    assert "STOPPED BY THE TIME BUDGET" in caplog.text

    with pytest.raises(RuntimeError, match="diverged at step"):
        mae.pretrain(settings(tiny["arch"], **{**tiny["train"], "lr": 1e30, "max_steps": 4}), images, "cpu")


def test_import_leaves_out_torch():
    code = ("from ddpmseg.backbones import mae\n"
            "mae.layer_table({'arch': {'patch_size': 8, 'embed_dim': 1024, 'depth': 24}}, 256)")
    assert heavy_modules_imported(code, ["torch", "timm", "lightly"]) == []
