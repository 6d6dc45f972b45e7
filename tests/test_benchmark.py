"""A small run of the paper-vs-ours benchmark harness, so that it cannot rot. Nothing here is
timed: the assertions are about what the two paths compute, not how fast."""

import json
import pathlib
import subprocess
import sys

import pytest

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
FASSEG = REPOSITORY.parent / "shared" / "datasets" / "fasseg_face6"


@pytest.mark.skipif(not FASSEG.is_dir(), reason="shared fasseg_face6 dataset not available")
def test_benchmark_harness_smoke_run(tmp_path):
    command = [sys.executable, str(REPOSITORY / "benchmarks" / "compare_paper_path.py"), "--size", "smoke",
               "--work", str(tmp_path), "--dataset", str(FASSEG), "--train-batches", "20", "--members", "2",
               "--miou-seeds", "2", "--test-images", "4", "--sample-pixels", "64"]
    printed = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result = json.loads((tmp_path / "results.json").read_text())["smoke"]
    # the smoke model: blocks 0 and 2 of 4 at t 50 and 150, 32x32
    dim = result["extract"]["dim"]
    assert dim == result["paper"]["2"]["dim"] == 2 * (64 + 32)
    # early exit after block 2 of 4: fewer FLOPs than the full forward per timestep
    assert 0 < result["flops"]["ours"] < result["flops"]["paper"]
    # native float16 (block 0 at 16x16, block 2 at 32x32) against float32 at 32x32
    assert result["extract"]["native_bytes_per_image"] == 2 * 2 * (64 * 16 * 16 + 32 * 32 * 32)
    assert 0 < result["extract"]["stored_bytes_per_image"]
    # the features agree within float16 rounding, at real pixels of real images
    for run in result["paper"].values():  # before storage: the paper's extractor and ours agree exactly
        assert run["exact"]["bit_identical"] and run["exact"]["max_abs_difference"] == 0 and run["exact"]["maps"] == 4
    equality = result["equality"]
    assert equality["within_float16"] and equality["images"] == 2 and equality["pixels"] >= 64
    assert 0 < equality["max_abs_difference"] < 2**-10 * equality["max_abs_value"]
    # both paths trained, at every requested size, and memory was measured
    for runs in (result["paper"], result["ours"]):
        assert sorted(runs) == ["2", "3"]
        for run in runs.values():
            assert run["member_pixels"] > 0 and run["train_seconds"] > 0 and run["peak_rss"] > 2**20
    # every timed run: 20 batches of 64 pixels for each of the 2 members
    assert result["ours"]["3"]["member_pixels"] == 20 * 64 * 2
    assert result["paper"]["3"]["member_pixels"] == 20 * 64 * 2
    # mIoU of both paths, per seed, trained to the stop rule: real segmentations, close together
    miou = result["miou"]
    assert len(miou["paper"]) == len(miou["ours"]) == 2
    assert min(miou["paper"] + miou["ours"]) > 0.25
    assert abs(sum(miou["paper"]) - sum(miou["ours"])) / 2 < 0.1
    for line in ("extraction s/image", "FLOPs/image", "cached features MB/image", "peak RSS", "member-pixels/s",
                 "float16 bound: PASS", "test mIoU", "batch 1: bit-identical over 4 maps"):
        assert line in printed
    assert (tmp_path / "report.txt").read_text().strip() in printed


def test_extraction_speed_benchmark_runs_every_model_at_its_input_size(tmp_path):
    """One image, one repeat: each model's maps at its input size (the ViT-S/14's 37x37 tokens at
    DINOv2's 518, 16x16 at 224; ConvNeXt-T's four stages at 224) and a time for every one."""
    subprocess.run([sys.executable, str(REPOSITORY / "benchmarks" / "extraction_speed.py"), "--images", "1",
                    "--repeats", "1", "--threads", "1", "--work", str(tmp_path)], check=True, capture_output=True)
    result = json.loads((tmp_path / "extraction_speed.json").read_text())
    assert result["vit_s14_518"]["maps"]["blocks.11"] == [384, 37] and result["vit_s14_224"]["maps"]["blocks.8"] == [384, 16]
    assert [shape for shape in result["convnext_t_224"]["maps"].values()] == [[96, 56], [192, 28], [384, 14], [768, 7]]
    assert result["unet_untrained"]["timesteps"] and result["unet_untrained"]["ratio_to_adm"] == 1.0
    assert all(result[key]["seconds_per_image"] > 0 for key in ("vit_s14_518", "vit_s14_224", "convnext_t_224"))


def test_throughput_benchmark_times_both_segmenters_in_torch_and_onnxruntime(tmp_path):
    """The default size, one image: the ensemble and the DeepLab bundle, each exported to ONNX,
    each (segmenter, runtime) timed in a child of its own with its own peak memory."""
    subprocess.run([sys.executable, str(REPOSITORY / "benchmarks" / "segment_speed.py"), "--size", "default",
                    "--images", "1", "--threads", "1", "--work", str(tmp_path)], check=True, capture_output=True)
    rows = json.loads((tmp_path / "segment_speed.json").read_text())
    assert [(r["segmenter"].split()[0], r["runtime"]) for r in rows] == [
        ("ensemble", "torch"), ("ensemble", "onnxruntime"), ("deeplab", "torch"), ("deeplab", "onnxruntime")]
    assert all(r["seconds_per_image"] > 0 and r["peak_rss_mb"] > 50 for r in rows)
    assert rows[0]["speedup_vs_torch_ensemble"] == 1.0 and all(r["export_seconds"] > 0 for r in rows[1::2])
    assert (tmp_path / "default_ensemble/model.onnx").is_file()
