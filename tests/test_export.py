"""ONNX export of a bundle whose source is not the ADM (timm's ConvNeXt, random weights, an
ensemble trained on its features of real masks), and the graph's majority vote. The ADM's and
DeepLab's exports run on the tiny workflow's bundles (test_workflow.py)."""
import numpy as np
import pytest
import torch

from ddpmseg import methods
from ddpmseg.backbones import timm_model
from ddpmseg.export import export_onnx, majority_labels, onnx_predict, segmenter_graph
from ddpmseg.features import build_method_model, extract_cells
from ddpmseg.ensemble import train_ensemble
from ddpmseg.segmenter import Segmenter
from ddpmseg.stores import open_stores
from ddpmseg.votes import majority_vote

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("route", ["upsampled", "native"])
def test_a_timm_bundle_exports_and_onnxruntime_agrees_with_the_bundle(creatures32, tmp_path, monkeypatch, route):
    """Either route of the first layer (`predict.first_layer_route`: the paper's 8448 features take
    the native one, the small models the upsampled one) exports and agrees."""
    monkeypatch.setattr("ddpmseg.predict.first_layer_route", lambda models, maps, size: route)
    images, labels = creatures32
    settings = timm_model.complete_settings(methods.with_defaults(timm_model.SETTINGS, {
        "model": "convnext_atto.d2_in1k", "pretrained": False, "input_size": 64, "layers": ["stages.0", "stages.1"]}), {})
    plan = methods.MethodPlan(key="convnext", source="timm", name="ConvNeXt", settings=settings)
    model, table, identity = build_method_model(plan, 32, None, "cpu", 0)
    cells = [("stages.0", None), ("stages.1", None)]
    paths = extract_cells("timm", model, images[:8], [str(i) for i in range(8)], cells, table, tmp_path / "f", identity)
    (ensemble,), _ = train_ensemble(open_stores(paths), labels[:8], 7, 255, seeds=[0], n_members=3, batch_size=64,
                                    lr=1e-3, max_epochs=2, early_stop_epoch=1, patience=50, min_class_pixels=20,
                                    buffer_mb=1, cache_mb=1)
    torch.save(ensemble.state_dict(), tmp_path / "ensemble.pt")
    bundle = Segmenter.for_ensemble(
        tmp_path / "ensemble.pt", plan=plan, cells=cells, checkpoint=None, model_seed=0, noise_seed=0,
        noise_device="cpu", batch_images=1, threads={"extraction": 1, "prediction": 1},
        classes=[f"c{i}" for i in range(7)], ignore_label=255, image_size=32, non_square="pad", resize="lanczos",
        vote="majority", provenance={})
    export_onnx(bundle, tmp_path / "convnext.onnx", images[:1])
    test = images[8:]
    onnx_labels, probabilities, uncertainty = onnx_predict(tmp_path / "convnext.onnx", test)
    expected, expected_uncertainty = bundle.predict(test)
    assert (onnx_labels == expected).mean() >= 0.999
    np.testing.assert_allclose(uncertainty, expected_uncertainty, atol=2e-3)
    assert probabilities.shape == (4, 7, 32, 32)
    assert timm_model.EXPORTABLE


def test_the_graphs_majority_vote_is_the_papers_ties_included():
    """One-hot counting (what ONNX can run) picks what torch.mode does, the smallest class among ties."""
    members = torch.tensor([[0, 2, 2, 1, 3], [2, 0, 1, 1, 3], [0, 1, 2, 3, 1], [2, 0, 1, 0, 0]])  # (M=4, P=5)
    probabilities = torch.nn.functional.one_hot(members, 4).float() * 0.7 + 0.075
    assert torch.equal(majority_labels(probabilities), majority_vote(probabilities))
    assert majority_labels(probabilities).tolist() == [0, 0, 1, 1, 3]


def test_sources_that_do_not_export_are_refused_in_one_line(tmp_path):
    bundle = Segmenter.from_description({"format": "ddpmseg-segmenter/1", "kind": "ensemble", "classes": ["a"],
                                         "image_size": 8, "features": {"plan": {"source": "stable_diffusion"}}}, {})
    with pytest.raises(ValueError, match="a 'stable_diffusion' ensemble does not export to ONNX"):
        segmenter_graph(bundle)
