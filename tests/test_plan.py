"""The plan (ddpmseg.plan) computed from a config, without Snakemake: run lists, result folders,
stores, the extraction and diffusion-training rules, and the parse-time errors."""

import copy
import re
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config, validate

from conftest import heavy_modules_imported
from ddpmseg.methods import ConfigProblem
from ddpmseg.plan import Plan
from ddpmseg.plan.stores import EXTRACTION_NAMES

REPO = Path(__file__).resolve().parents[1]


def validated(*overlays):
    """config.yaml with `overlays` (dicts, as --configfile) merged over it, schema defaults set."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for overlay in overlays:
        update_config(config, copy.deepcopy(overlay))
    validate(config, str(REPO / "schemas" / "config.schema.yaml"), set_default=True)
    return config


TWO_MODELS = {"datasets": {"creatures7": {"diffusion": {"seeds": [0, 3]}}}}


def test_the_default_plans_model_seed_folders_and_runs():
    plan = Plan(validated(TWO_MODELS))
    assert plan.datasets == ["creatures7"] and plan.methods == ["ddpm", "unet_untrained", "pixels", "patch"]
    assert plan.method_keys("creatures7", "ddpm") == ["ddpm", "ddpm_m3"]
    assert plan.method_keys("creatures7", "pixels") == ["pixels"]
    assert plan.model_seed("creatures7", "ddpm_m3") == 3 and plan.model_seed("creatures7", "unet_untrained") == 0
    assert plan.run_model_seed("creatures7", "ddpm_m3") == 3 and plan.run_model_seed("creatures7", "patch") is None
    assert len(plan.runs) == (2 + 2 + 1 + 1) * 5
    assert plan.model_checkpoint("creatures7", "ddpm_m3") == "results/creatures7/diffusion_m3/model.pt"
    assert plan.model_checkpoint("creatures7", "unet_untrained") is None  # random weights from the flags
    assert plan.training_outcomes() == [("creatures7", "results/creatures7/diffusion/training.json"),
                                        ("creatures7", "results/creatures7/diffusion_m3/training.json")]
    assert plan.method_key_pattern() == r"ddpm(_m\d+)?|unet_untrained(_m\d+)?|pixels|patch"


def test_learned_aggregation_draws_the_weights_of_every_method_with_several_cells():
    assert Plan(validated()).probes.cell_weight_figures() == []  # concat, the paper's
    plan = Plan(validated(TWO_MODELS, {"datasets": {"creatures7": {"ensemble": {"aggregation": "learned"}}}}))
    assert plan.probes.cell_weight_figures() == [  # the two models' DDPM and untrained UNet; pixels and patch are one cell
        f"results/creatures7/figures/{key}/cell_weights.png" for key in ("ddpm", "ddpm_m3", "unet_untrained", "unet_untrained_m3")]


def test_resplits_run_every_method_folder_on_every_split():
    assert Plan(validated()).resplits.runs() == []
    plan = Plan(validated(TWO_MODELS, {"datasets": {"creatures7": {"evaluation": {"resplits": 2}}}}))
    keys = ["ddpm", "ddpm_m3", "unet_untrained", "unet_untrained_m3", "pixels", "patch"]
    assert plan.resplits.runs() == [("creatures7", key, r) for key in keys for r in range(2)]


def test_one_extraction_job_per_folder_of_stores():
    plan = Plan(validated())
    ddpm = plan.stores.extraction("creatures7", "ddpm", "train", "cells")
    assert ddpm.layers == ["b0", "b1", "b2", "b3"] and ddpm.timesteps == [50, 150]
    assert (ddpm.noise_mode, ddpm.noise_seed, ddpm.model_seed) == ("shared", 0, 0)
    assert ddpm.checkpoint == "results/creatures7/diffusion/model.pt"
    assert plan.stores.store_path("creatures7", "ddpm", "train", "b1", 50) == "results/creatures7/features/ddpm/train/cells/features_b1_t50.zarr"
    sweep = plan.stores.extraction("creatures7", "ddpm", "test", "sweep_t50")  # the sweep's other blocks at t=50
    assert sweep.layers == ["b4", "b5"] and sweep.timesteps == [50]
    assert plan.stores.extraction("creatures7", "ddpm", "test", "sweep_t0").layers[0] == "b0"
    assert plan.stores.sweep_store("creatures7", "ddpm", "test", "b4", 50) == \
        "results/creatures7/features/ddpm/test/sweep_t50/features_b4_t50.zarr"
    assert plan.stores.sweep_store("creatures7", "ddpm", "test", "b1", 50) == plan.stores.store_path("creatures7", "ddpm", "test", "b1", 50)
    noise = plan.stores.extraction("creatures7", "ddpm", "train", "noise_per_timestep")
    assert noise.noise_mode == "per_timestep" and noise.layers == ddpm.layers
    assert plan.noise.stores("creatures7", "ddpm", "test", "per_timestep")[0] == \
        "results/creatures7/features/ddpm/test/noise_per_timestep/features_b0_t50.zarr"
    budget = plan.stores.extraction("creatures7", "ddpm", "train", "budget_step50")
    assert budget.checkpoint == "results/creatures7/budget/diffusion/snapshots/step50.pt" and budget.model_seed == 0
    assert plan.budget.stores("creatures7", "train", 50)[0] == \
        "results/creatures7/features/ddpm/train/budget_step50/features_b0_t50.zarr"
    assert plan.stores.extraction("creatures7", "pixels", "train", "cells").checkpoint is None
    assert re.fullmatch(EXTRACTION_NAMES, "noise_fresh3") and not re.fullmatch(EXTRACTION_NAMES, "features")
    assert plan.diffusion_train("creatures7")["max_steps"] != 500
    assert plan.diffusion_train("creatures7", budget=True)["max_steps"] == 500


def test_per_run_noise_gives_every_seed_its_stores():
    plan = Plan(validated({"datasets": {"creatures7": {"features": {"noise_seed": "per_run"}}}}))
    assert plan.stores.extraction("creatures7", "ddpm", "train", "cells_noise3").noise_seed == 3
    assert plan.stores.extraction("creatures7", "ddpm", "train", "sweep_t50").noise_seed == 0  # the first run's noise
    assert plan.stores.sweep_store("creatures7", "ddpm", "train", "b1", 50) == \
        "results/creatures7/features/ddpm/train/cells_noise0/features_b1_t50.zarr"
    stores = plan.stores.cell_stores("creatures7", "ddpm", "train", plan.fixed_cells("creatures7", "ddpm"))
    assert len(stores) == 8 * 5 and stores[8].startswith("results/creatures7/features/ddpm/train/cells_noise1/")
    assert plan.stores.cell_stores("creatures7", "pixels", "train", [("rgbxy", None)]) == [
        "results/creatures7/features/pixels/train/cells/features_rgbxy.zarr"]


def test_the_unlabeled_images_are_read_by_whatever_uses_them():
    given = {"datasets": {"creatures7": {"diffusion": {"checkpoint": "adm.pt"}}}}
    assert Plan(validated()).needs_unlabeled("creatures7")  # the diffusion stage trains on them
    assert not Plan(validated(given)).needs_unlabeled("creatures7")
    assert Plan(validated(given, {"methods": {"mae": {"source": "mae"}}})).needs_unlabeled("creatures7")  # pretrained
    assert not Plan(validated(given, {"methods": {"mae": {"source": "mae", "checkpoint": "mae.pth"}}})).needs_unlabeled(
        "creatures7")
    assert Plan(validated(given, {"datasets": {"creatures7": {"distill": {"pools": ["unlabeled"]}}}})).needs_unlabeled(
        "creatures7")
    assert Plan(validated(given, {"datasets": {"creatures7": {"label_next": {"count": 5}}}})).needs_unlabeled(
        "creatures7")


def test_deeplab_auto_settings_enlarge_small_images_and_recalibrate_backbones_from_scratch():
    def deeplab(settings):
        return Plan(validated({"datasets": {"creatures7": {"distill": {"deeplab": settings}}}})).distill.deeplab(
            "creatures7")

    default = deeplab({})  # the default's 48x48 images
    assert default["input_size"] == 128 and default["recalibrate_batchnorm"] is True
    assert deeplab({"backbone_weights": "resnet50.pth"})["recalibrate_batchnorm"] is False  # ImageNet statistics
    off = deeplab({"input_size": None, "recalibrate_batchnorm": False})  # the paper's: the image size, no recalibration
    assert off["input_size"] is None and off["recalibrate_batchnorm"] is False
    assert deeplab({"input_size": 96})["input_size"] == 96


def test_label_next_settles_method_seed_and_the_batch_format():
    assert Plan(validated()).label_next.settings("creatures7") is None and Plan(validated()).label_next.targets() == []
    plan = Plan(validated({"datasets": {"creatures7": {"label_next": {"count": 4}}}}))
    assert plan.label_next.settings("creatures7") == {"method": "ddpm", "seed": 0, "strategy": "uncertainty+diversity",
                                             "count": 4, "candidates": 5, "format": "paper", "unit": "image",
                                             "per_image": 8}
    assert plan.label_next.targets() == ["results/creatures7/label_next/ranking.csv"]
    regions = Plan(validated({"datasets": {"creatures7": {"label_next": {"count": 30, "unit": "region"}}}}))
    assert regions.label_next.settings("creatures7")["strategy"] == "uncertainty"  # a region batch's default
    assert regions.label_next.targets() == ["results/creatures7/label_next/regions/ranking.csv"]
    for unit, strategy in (("region", "diversity"), ("image", "balanced")):
        with pytest.raises(ConfigProblem, match=f"label_next.strategy: '{strategy}' ranks .*with unit: {unit} use"):
            Plan(validated({"datasets": {"creatures7": {"label_next": {"count": 3, "unit": unit, "strategy": strategy}}}}))
    for fmt, batch in (("voc", "voc"), ("cvat", "cvat"), ("image_mask", "palette"), ("labelme", "palette"),
                       ("label_studio", "label_studio")):
        chosen = {"path": "data", "format": fmt, "label_next": {"count": 1, "method": "pixels", "seed": 2}}
        settled = Plan(validated({"datasets": {"creatures7": chosen}})).label_next.settings("creatures7")
        assert (settled["format"], settled["method"], settled["seed"]) == (batch, "pixels", 2), fmt


def test_downloads_are_one_rule_by_file_name():
    plan = Plan(validated({"downloads": {
        "archive": {"url": "https://example.org/data/archive.tar.gz", "sha256": None, "unpack": True},
        "model": {"url": "https://example.org/m.pt?x=1", "sha256": "ab" * 32, "file": "model_a.pt"}}}))
    assert plan.files.download_files() == ["archive.tar.gz", "model_a.pt"] and plan.files.unpacked_downloads() == ["archive"]
    assert plan.files.download_of("model_a.pt")["sha256"] == "ab" * 32
    assert plan.files.written_folder("creatures7", "resources/archive/x/y.npz") == "resources/archive"
    assert plan.files.written_folder("creatures7", "/data/y.npz") is None


def test_the_labelling_loop_runs_an_image_and_a_region_arm():
    loop = {"labels": [2, 4], "strategies": ["random"], "seeds": [0, 1],
            "regions": {"shares": [0.01, 0.05], "strategies": ["uncertainty", "balanced"]}}
    plan = Plan(validated({"datasets": {"creatures7": {"experiments": {"active_labelling": loop}}}}))
    assert plan.active_labelling.runs("creatures7") == [("image", "random", 0), ("image", "random", 1),
                                                        ("region", "uncertainty", 0), ("region", "uncertainty", 1),
                                                        ("region", "balanced", 0), ("region", "balanced", 1)]
    assert plan.active_labelling.curves("creatures7")[2] == "results/creatures7/active_labelling/region/uncertainty/seed0.csv"
    regions_only = Plan(validated({"datasets": {"creatures7": {"experiments": {"active_labelling": {
        "regions": {"shares": [0.05]}}}}}}))
    assert [unit for unit, _, _ in regions_only.active_labelling.runs("creatures7")] == ["region"] * 15
    with pytest.raises(ConfigProblem, match=r"regions.shares \[0.05, 0.01\] must rise"):
        Plan(validated({"datasets": {"creatures7": {"experiments": {"active_labelling": {
            "regions": {"shares": [0.05, 0.01]}}}}}}))


def test_experiment_runs_follow_the_config():
    plan = Plan(validated({"datasets": {"creatures7": {"experiments": {"methods": ["ddpm", "pixels"]}}}}))
    assert plan.noise.methods("creatures7") == ["ddpm"] and plan.budget.method("creatures7") == "ddpm"
    assert plan.labels.runs()[0] == ("creatures7", "ddpm", None, 0)
    assert plan.labels.metrics()[-1] == "results/creatures7/pixels/labels5/seed4/metrics.json"
    assert {run[2] for run in plan.noise.runs()} == {"shared", "per_timestep", "fresh"}
    assert plan.budget.runs("creatures7")[-1] == ("pixels", None, 4)
    assert plan.probes.swept_method("creatures7", "unet_untrained") == "ddpm"  # the control takes the trained model's cells


@pytest.mark.parametrize("overlay, expected", [
    ({"datasets": {"creatures7": {"image_size": 64}}},
     "config: dataset 'creatures7' has image_size 64 but its diffusion model flags have image_size 48"),
    ({"datasets": {"creatures7": {"diffusion": {"checkpoint": "a.pt", "seeds": [0, 1]}}}},
     "config: datasets.creatures7.diffusion.seeds lists 2 seeds, but a given checkpoint is one model"),
    ({"datasets": {"creatures7": {"distill": {"pools": ["unlabeled"], "method": "vit"}}}},
     "config: datasets.creatures7.distill.method is 'vit', not a method"),
    ({"datasets": {"creatures7": {"segment": {"pool": {"path": "x", "seed": 9}}}}},
     "config: datasets.creatures7.segment.pool.seed is 9, not one of the seeds [0, 1, 2, 3, 4]"),
    ({"datasets": {"creatures7": {"segment": {"pool": {"path": "x", "model": "deeplab"}}}}},
     "config: datasets.creatures7.segment.pool asks for model deeplab, but datasets.creatures7.distill.pools is empty"),
    ({"downloads": {"m": {"url": "https://example.org/m.pt", "sha256": None, "unpack": True}}},
     "config: download 'm' has unpack: true but resources/downloads/m.pt is not a .tar.gz, .tgz, .tar or .zip"),
    ({"downloads": {"a": {"url": "https://example.org/m.pt", "sha256": None},
                    "b": {"url": "https://example.com/x/m.pt", "sha256": None}}},
     "config: downloads: two entries land at resources/downloads/m.pt; give one of them another `file`"),
    ({"datasets": {"creatures7": {"distill": {"pools": ["released_gan"]}}}},
     "config: datasets.creatures7.distill.pools lists released_gan, but distill.released.gan is not set"),
    ({"datasets": {"creatures7": {"path": "data", "format": "cityscape"}}},
     "config: datasets.creatures7.format: unknown format 'cityscape' (did you mean 'cityscapes'?); known: ade20k2017, "),
    ({"datasets": {"creatures7": {"unannotated": "ignore", "split": {"test_fraction": 0.2}}}},
     "config: datasets.creatures7: unannotated, split apply only to a dataset with a `format`"),
    ({"datasets": {"creatures7": {"classes": {"a": "b"}}}},
     "config: datasets.creatures7: classes (a mapping) apply only to a dataset with a `format`"),
    ({"datasets": {"creatures7": {"path": "data", "format": "voc", "classes": ["a", "b"]}}},
     "config: datasets.creatures7.classes: format voc names its own classes; give a mapping"),
    ({"datasets": {"creatures7": {"format": "voc"}}},
     "config: datasets.creatures7: format voc needs the `path` of the dataset's folder"),
    ({"datasets": {"creatures7": {"label_next": {"count": 3, "method": "dppm"}}}},
     "config: datasets.creatures7.label_next.method is 'dppm', not a method; give one of ddpm, "),
    ({"datasets": {"creatures7": {"label_next": {"count": 3, "seed": 7}}}},
     "config: datasets.creatures7.label_next.seed is 7, not one of the seeds [0, 1, 2, 3, 4]; give one of them"),
])
def test_a_config_problem_is_one_line_naming_the_key(overlay, expected):
    with pytest.raises(ConfigProblem) as problem:
        Plan(validated(overlay))
    assert str(problem.value).startswith(expected) and "\n" not in str(problem.value)


SHARED_EXPORTS = REPO.parent / "shared" / "real-exports" / "labelme"


@pytest.mark.skipif(not SHARED_EXPORTS.is_dir(), reason="shared real-exports not available")
def test_format_auto_is_settled_from_the_folder_before_anything_plans(tmp_path):
    """`format: auto` becomes the format the folder is in (the paper's layout: paper) and the plan
    says which; a folder that fits two formats is a one-line config error listing both."""
    voc = {"path": str(SHARED_EXPORTS / "semantic_voc"), "format": "auto", "non_square": "pad",
           "split": {"test_fraction": 0.34}}
    plan = Plan(validated({"datasets": {"creatures7": None, "photos": voc}}))
    assert plan.settings("photos")["format"] == "voc"
    assert plan.detected_formats == {"photos": ("voc", "SegmentationClass/")}
    paper = {"path": str(REPO.parent / "shared" / "datasets" / "fasseg_face6"), "format": "auto"}
    plan = Plan(validated({"datasets": {"creatures7": None, "faces": paper}}))
    assert plan.settings("faces")["format"] == "paper" and plan.detected_formats["faces"][0] == "paper"
    both = tmp_path / "both"
    (both / "SegmentationClass").mkdir(parents=True)
    (both / "images").mkdir()
    (both / "masks").mkdir()
    with pytest.raises(ConfigProblem, match=r"^config: datasets\.photos\.format: auto: .*fits 2 formats: "
                                            r"image_mask \(images/ and masks/\); voc \(SegmentationClass/\)"):
        Plan(validated({"datasets": {"creatures7": None, "photos": {**voc, "path": str(both)}}}))


def test_an_auto_methods_stores_are_those_its_sweep_picked():
    """`auto` cells are known once the sweep has run: the workflow hands them to the plan
    (`Stores.sweep_cells`); the untrained UNet takes the trained one's cells, from its own sweep's
    stores."""
    plan = Plan(validated({"datasets": {"creatures7": {"features": {"blocks": "auto", "timesteps": "auto"}}}}))
    asked = []
    plan.stores.sweep_cells = lambda dataset, method: asked.append(method) or [("b3", 150), ("b1", 50)]
    assert plan.stores.method_stores("creatures7", "unet_untrained", "test") == [  # its own sweep's stores
        "results/creatures7/features/unet_untrained/test/sweep_t150/features_b3_t150.zarr",
        "results/creatures7/features/unet_untrained/test/sweep_t50/features_b1_t50.zarr"]
    assert asked == ["ddpm"]
    assert plan.stores.run_stores("creatures7", "pixels", "test", 3) == plan.stores.method_stores("creatures7", "pixels", "test")


def test_the_plan_imports_no_model_library():
    """The Snakefile plans every job without torch, matplotlib or datumaro: parsing stays quick."""
    assert heavy_modules_imported("import ddpmseg.plan", ["torch", "matplotlib", "datumaro"]) == []


def test_added_labels_rerun_the_labelled_splits_not_the_pool(tmp_path):
    """A file added to a dataset's `added_labels` folder changes the labelled splits' manifest
    (they are prepared again) and not the pool's (the diffusion model stays)."""
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "images" / "a.png").write_bytes(b"png")
    (tmp_path / "added" / "masks").mkdir(parents=True)
    chosen = {"path": str(tmp_path / "data"), "format": "coco_instances", "added_labels": str(tmp_path / "added")}
    files = Plan(validated({"datasets": {"creatures7": chosen}})).files
    before = {part: files.manifest("creatures7", part) for part in ("labelled", "pool")}
    (tmp_path / "added" / "masks" / "a.png").write_bytes(b"mask")
    assert files.manifest("creatures7", "labelled") != before["labelled"]
    assert files.manifest("creatures7", "pool") == before["pool"]
    paper = {"path": str(tmp_path / "data"), "added_labels": "added"}
    with pytest.raises(ConfigProblem, match="added_labels apply only to a dataset with a `format`"):
        Plan(validated({"datasets": {"creatures7": paper}}))
