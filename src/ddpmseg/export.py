"""A segmenter bundle as one ONNX model, for another program or language (`ddpmseg export`).

The graph takes `image`: (N, S, S, 3) uint8 RGB at the bundle's image size (brought there as
its training images were: the bundle's `non_square` and `resize`, in the model's metadata), and
gives `labels` (N, S, S) int64 (the bundle's vote), `probabilities` (N, C, S, S) float32 (the
members' mean softmax; DeepLab's softmax) and `uncertainty` (N, S, S) float32, nats (the members'
Jensen-Shannon divergence; DeepLab's entropy). An ensemble's graph holds its feature source with
the run's fixed noise as a constant, the features rounded to float16 as the stores hold them, and
the MLPs, whose first layer takes the route `Segmenter.predict` takes (`predict.first_layer_route`):
on the bilinearly upsampled features, or on each map at its own resolution before upsampling. The
bundle's description is in the model's metadata (`ddpmseg`, JSON). Exported with torch's
dynamo exporter (`torch.onnx.export(dynamo=True)`) for one image a call (N = 1: the sources'
forwards fix their batch while traced).

A source declares whether it exports (`EXPORTABLE`). Tested against onnxruntime: `adm`, `pixels`,
`patch`, `timm` (ViTs and ConvNeXts); `mae` and `swav` (plain ViT / ResNet forwards) export too,
checked on FASSEG's bundles (docs/results.md) but not in the tests; `diffusers_unet` and
`stable_diffusion` are refused: their diffusers pipelines (schedulers in numpy, SD's VAE and CLIP
text encoder) are not written for export, and an SD graph would be several GB. Which graph a
bundle gives is its kind's (`Segmenter.graph`).
"""

import json

import numpy as np
import torch
import torch.nn.functional as F

OPSET = 18


class EnsembleGraph(torch.nn.Module):
    """An ensemble bundle's whole prediction as one module: image -> (labels, probabilities,
    uncertainty). ValueError for a source that does not export (`EXPORTABLE`)."""

    def __init__(self, segmenter):
        super().__init__()
        from ddpmseg import backbones
        from ddpmseg.features import cell_calls
        from ddpmseg.mlp import ensemble_from_state_dict
        from ddpmseg.model_input import shared_noise

        recipe = segmenter.description["features"]
        plan = recipe["plan"]
        self.source = backbones.source(plan["source"])
        if not self.source.EXPORTABLE:
            raise ValueError(f"a {plan['source']!r} ensemble does not export to ONNX (exportable sources: "
                             f"{', '.join(n for n in backbones.SOURCES if backbones.source(n).EXPORTABLE)}); "
                             "use the bundle from Python")
        self.model = segmenter.source_model("cpu")[0]  # a module: the export sees its weights
        self.cells = [tuple(cell) for cell in recipe["cells"]]
        self.calls = cell_calls(self.cells)
        size = segmenter.image_size
        if self.source.TAKES_TIMESTEPS:
            shape = self.source.noise_shape(self.model, size)
            self.register_buffer("noise", shared_noise(size, recipe["noise_seed"], recipe["noise_device"], shape).cpu())
        else:
            self.noise = None
        self.ensemble = ensemble_from_state_dict(segmenter.weights).eval()
        self.size, self.vote = size, segmenter.description["vote"]

    def forward(self, image: torch.Tensor):
        from ddpmseg.model_input import model_input

        x = model_input(image, self.source.NORMALISATION)
        maps = {}
        for layers, steps in self.calls:
            maps.update(self.source.activations(self.model, x, layers, steps, self.noise))
        members = torch.cat([self._member_probabilities([maps[cell][i].half().float().permute(1, 2, 0)
                                                         for cell in self.cells])
                             for i in range(image.shape[0])], dim=1)  # (M, N*S*S, C)
        mean = members.mean(dim=0)
        uncertainty = _entropy(mean) - _entropy(members).mean(dim=0)
        labels = majority_labels(members) if self.vote == "majority" else mean.argmax(dim=-1)
        grid = (image.shape[0], self.size, self.size)
        return (labels.reshape(grid), mean.reshape(*grid, -1).permute(0, 3, 1, 2),
                uncertainty.reshape(grid))

    def _member_probabilities(self, native: list) -> torch.Tensor:
        """Every member's softmax at every pixel of one image from its float16-rounded maps
        [(h, w, C)]: (M, S*S, C), by the cheaper route of `predict.first_layer_route`, as the
        bundle's own prediction: the first Linear on the upsampled features, or on each map at its
        own resolution and its (M * H1)-channel sums upsampled (the paper's 8448 features: the
        upsampled (S*S, D) matrix alone would be 2.2 GB at 256x256)."""
        from ddpmseg.mlp import first_layer_projections, predict_probabilities, probabilities_from_first_layer
        from ddpmseg.predict import first_layer_route

        if first_layer_route([self.ensemble], native, self.size) == "upsampled":
            features = torch.cat([_upsample(fmap, self.size) for fmap in native], dim=-1)  # (S, S, D)
            return predict_probabilities(self.ensemble, features.reshape(self.size**2, -1), chunk=self.size**2)
        first = sum(_upsample(projection, self.size) for projection in first_layer_projections(self.ensemble, native))
        return probabilities_from_first_layer(self.ensemble, first.reshape(self.size**2, -1))


def _upsample(fmap: torch.Tensor, size: int) -> torch.Tensor:
    """(h, w, C) -> (size, size, C), bilinear (align_corners=False, as `stores.sample_pixel_features`)."""
    return F.interpolate(fmap.permute(2, 0, 1)[None], size=(size, size), mode="bilinear",
                         align_corners=False)[0].permute(1, 2, 0)


class DeepLabGraph(torch.nn.Module):
    """A DeepLab bundle as one module: image -> (labels, probabilities, uncertainty)."""

    def __init__(self, segmenter):
        super().__init__()
        from ddpmseg.deeplab import build_deeplab

        settings = segmenter.description["deeplab"]
        self.deeplab = build_deeplab(settings["backbone"], len(segmenter.classes))
        self.deeplab.load_state_dict(segmenter.weights)
        self.deeplab.eval()
        self.input_size = settings.get("input_size")

    def forward(self, image: torch.Tensor):
        from ddpmseg.deeplab import deeplab_logits

        p = torch.softmax(deeplab_logits(self.deeplab, image, self.input_size).float(), dim=1)
        return p.argmax(dim=1), p, _entropy(p.permute(0, 2, 3, 1))


def majority_labels(members: torch.Tensor) -> torch.Tensor:
    """The paper's majority vote (`votes.majority_vote`: the most frequent member argmax, ties
    to the smallest class id) by counting one-hot votes, which ONNX runs (it has no torch.mode):
    (M, P, C) probabilities -> (P,) int64."""
    return F.one_hot(members.argmax(dim=-1), members.shape[-1]).sum(dim=0).argmax(dim=-1)


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) over the last dimension."""
    return -(p * torch.log(p.clamp_min(1e-12))).sum(dim=-1)


def segmenter_graph(segmenter) -> torch.nn.Module:
    """The module computing what `segmenter.predict` does, for export (its kind's graph, eval
    mode); ValueError for an ensemble whose source does not export."""
    return segmenter.graph().eval()


def export_onnx(segmenter, path, example_image: np.ndarray) -> None:
    """Writes the bundle's graph (`segmenter_graph`) to `path` (.onnx), traced on example_image
    (1, S, S, 3) uint8, with the bundle's description in the metadata (`ddpmseg`); weights over
    1.5 GB in `path`.data beside it. Written in a temporary folder first, so a failure leaves no file."""
    import os
    import tempfile
    from pathlib import Path

    import onnx

    graph = segmenter_graph(segmenter)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # weights beyond protobuf's 2 GB (the paper's ADM-256) go to an external PATH.data file beside it
    external = sum(t.numel() * t.element_size() for t in [*graph.parameters(), *graph.buffers()]) > 1.5 * 2**30
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}-") as tmp:
        staged = Path(tmp) / path.name
        with torch.no_grad():
            torch.onnx.export(graph, (torch.from_numpy(np.ascontiguousarray(example_image[:1])),), staged,
                              input_names=["image"], output_names=["labels", "probabilities", "uncertainty"],
                              dynamo=True, opset_version=OPSET, external_data=external, verbose=False)
        model = onnx.load(staged, load_external_data=False)
        description = {**segmenter.description, "onnx": {
            "inputs": {"image": "(1, S, S, 3) uint8 RGB at image_size, made as non_square and resize say"},
            "outputs": {"labels": "(1, S, S) int64, the vote", "probabilities": "(1, C, S, S) float32",
                        "uncertainty": "(1, S, S) float32, nats"}}}
        entry = model.metadata_props.add()
        entry.key, entry.value = "ddpmseg", json.dumps(description)
        onnx.save(model, staged)
        onnx.checker.check_model(str(staged))
        for file in Path(tmp).iterdir():  # the model last: a reader finds its data when it finds it
            if file != staged:
                os.replace(file, path.parent / file.name)
        os.replace(staged, path)


def onnx_predict(path, images: np.ndarray, threads: int | None = None) -> tuple:
    """(labels, probabilities, uncertainty) of an exported model on images (N, S, S, 3) uint8,
    through onnxruntime on the CPU (one image a call; `threads` intra-op threads, None: its default)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    outputs = [session.run(["labels", "probabilities", "uncertainty"], {"image": image[None]}) for image in images]
    return tuple(np.concatenate(parts) for parts in zip(*outputs))
