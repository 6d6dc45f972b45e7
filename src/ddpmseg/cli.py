"""The `ddpmseg` command: segment images with a trained segmenter bundle, describe a bundle, and
export it to ONNX, from the shell, without a config or Snakemake.

    ddpmseg segment results/fasseg_face6/ddpm/seed0/segmenter photos/ more/*.jpg --out masks/
    ddpmseg info results/fasseg_face6/ddpm/seed0/segmenter
    ddpmseg export results/fasseg_face6/ddpm/seed0/segmenter faces.onnx
    ddpmseg data check /data/streets_voc
    ddpmseg label-studio push results/fasseg_face6/label_next --project faces
    ddpmseg label-studio pull --project faces --configfile config/fasseg_face6.yaml --dataset fasseg_face6

A problem with what was given (a missing bundle or checkpoint, an unreadable image, a bundle of
a newer format) ends the command with one line naming the file and the fix, exit status 2;
`data check` exits 1 when the data itself has problems (each listed).
"""

import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np

from ddpmseg.images import IMAGE_SUFFIXES


class InputProblem(Exception):
    """A command-line input that cannot be used; the message names it and the fix."""


def image_files(paths) -> list:
    """[(name, file)] of the images that `paths` name, in order: a file as its stem, a folder's
    images (recursively, sorted) by their path below it without suffix ('sub/c'), a glob pattern's
    matches by their stems. InputProblem for a path that names no image, or two images that would
    write the same name."""
    found = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            named = [(p.relative_to(path).with_suffix("").as_posix(), p) for p in files]
        elif path.is_file():
            named = [(path.stem, path)]
        elif glob.has_magic(str(given)):
            named = [(Path(p).stem, Path(p)) for p in sorted(glob.glob(str(given), recursive=True)) if Path(p).is_file()]
        else:
            raise InputProblem(f"{given}: no such file or folder; give image files, folders of images or glob patterns")
        if not named:
            raise InputProblem(f"{given}: no images ({', '.join(IMAGE_SUFFIXES)}) here")
        found += named
    names = {}
    for name, file in found:
        if name in names:
            raise InputProblem(f"{file} and {names[name]} would both be written as {name}.png; give them in "
                               "separate runs or rename one")
        names[name] = file
    return found


def segment(args) -> None:
    """Masks (palette PNGs), uncertainty (8-bit grey PNGs, 255 = the largest possible) and overlays
    (photo | prediction | uncertainty) of every image, at its own size, under args.out."""
    from tqdm import tqdm

    from ddpmseg.images import read_rgb
    from ddpmseg.palette import save_palette_png
    from ddpmseg.plots import labelling_overlay
    from ddpmseg.segmenter import Segmenter
    from PIL import Image

    segmenter = Segmenter.load(args.bundle)
    files = image_files(args.paths)
    out = Path(args.out)
    classes, most = segmenter.classes, segmenter.uncertainty_max
    kind = segmenter.UNCERTAINTY
    with tqdm(total=len(files), unit="image", desc="segment", disable=args.quiet) as progress:
        for start in range(0, len(files), args.batch_size):
            batch = files[start : start + args.batch_size]
            labels, uncertainty = segmenter.predict_files([file for _, file in batch], device=args.device)
            for (name, file), mask, spread in zip(batch, labels, uncertainty):
                paths = {folder: out / folder / f"{name}.png" for folder in ("masks", "uncertainty", "overlays")}
                for path in paths.values():
                    path.parent.mkdir(parents=True, exist_ok=True)
                save_palette_png(mask, paths["masks"], len(classes))
                grey = np.clip(np.rint(spread / most * 255), 0, 255).astype(np.uint8)
                Image.fromarray(grey, mode="L").save(paths["uncertainty"])
                if not args.no_overlays:
                    labelling_overlay(read_rgb(file), mask, spread, classes, segmenter.description["ignore_label"],
                                      f"{name}: {Path(args.bundle).name}", paths["overlays"],
                                      uncertainty_name=f"{kind} (nats)")
            progress.update(len(batch))
    (out / "segment.json").write_text(json.dumps({
        "bundle": str(Path(args.bundle).resolve()), "images": {name: str(file) for name, file in files},
        "classes": classes, "uncertainty": f"{kind}, nats; uncertainty/*.png: 8-bit grey, 255 = {most:.4f} nats",
        "provenance": segmenter.description["provenance"]}, indent=1))
    print(f"segmented {len(files)} images into {out}", file=sys.stderr)


def export(args) -> None:
    """The bundle as one ONNX model (`ddpmseg.export`), checked against the bundle in torch on the
    `--check` images (or two generated ones): the share of pixels whose labels agree and the
    largest uncertainty difference are printed; below 99.9% agreement the export fails."""
    from ddpmseg.resizing import fit_image
    from ddpmseg.export import export_onnx, onnx_predict
    from ddpmseg.images import read_rgb
    from ddpmseg.segmenter import Segmenter

    segmenter = Segmenter.load(args.bundle)
    size, d = segmenter.image_size, segmenter.description
    if args.check:
        images = np.stack([fit_image(read_rgb(file), size, d["non_square"], d["resize"], file)
                           for _, file in image_files(args.check)])
    else:  # smooth colour gradients and a noisy copy: something like a photo, reproducibly
        ramp = np.linspace(0, 255, size)
        smooth = np.stack([np.add.outer(ramp, ramp) / 2, np.add.outer(ramp, ramp[::-1]) / 2,
                           np.add.outer(ramp[::-1], ramp) / 2], axis=-1)
        noisy = smooth + np.random.default_rng(0).normal(0, 30, smooth.shape)
        images = np.clip(np.stack([smooth, noisy]), 0, 255).astype(np.uint8)
    try:
        export_onnx(segmenter, args.out, images[:1])
    except ValueError as exc:
        raise InputProblem(f"{args.bundle}: {exc}") from exc
    labels, _, uncertainty = onnx_predict(args.out, images)
    expected, expected_uncertainty = segmenter.predict(images)
    agree = float((labels == expected).mean())
    spread = float(np.abs(np.asarray(uncertainty, dtype=np.float64) - np.asarray(expected_uncertainty)).max())
    print(f"wrote {args.out}: labels agree with the bundle on {100 * agree:.3f}% of {expected.size} pixels "
          f"({len(images)} images); uncertainty differs by at most {spread:.2e}")
    if agree < 0.999:
        for file in (Path(args.out), Path(f"{args.out}.data")):
            file.unlink(missing_ok=True)
        raise InputProblem(f"{args.out}: the ONNX model agrees with the bundle on only {100 * agree:.2f}% of the "
                           "pixels (below 99.9%); removed. Report it with the bundle's segmenter.json")


def describe(folder) -> list:
    """The lines `ddpmseg info` prints for the bundle at `folder`."""
    from ddpmseg.segmenter import Segmenter

    segmenter = Segmenter.load(folder)
    d = segmenter.description
    lines = [f"bundle: {Path(folder).resolve()}", f"format: {d['format']}"]
    lines += segmenter.summary()
    lines.append(f"classes ({len(segmenter.classes)}): " + ", ".join(f"{i} {c}" for i, c in enumerate(segmenter.classes)))
    lines.append(f"image size: {d['image_size']} (non-square images: {d['non_square']}, resize: {d['resize']})")
    provenance = d.get("provenance", {})
    lines.append("trained: " + ", ".join(f"{k} {v}" for k, v in provenance.items() if k != "ensemble"))
    metrics_file = Path(folder).parent / "metrics.json"  # the run's scores, where the results tree holds them
    if metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        scores = f"mIoU {100 * metrics['miou']:.1f}% ({metrics['vote']} vote) on the test split"
        if metrics.get("auroc_uncertainty") is not None:
            scores += f", uncertainty AUROC {metrics['auroc_uncertainty']:.3f}, ECE {100 * metrics['ece']:.2f}%"
        lines.append(f"scores: {scores} ({metrics_file})")
    else:
        lines.append("scores: none beside the bundle")
    return lines


def info(args) -> None:
    if args.json:
        from ddpmseg.segmenter import Segmenter

        print(json.dumps(Segmenter.load(args.bundle).description, indent=1))
    else:
        print("\n".join(describe(args.bundle)))


def data_check(args) -> int:
    """Print what `ddpmseg.data_check.check` finds; 1 when the data has problems."""
    import yaml

    from ddpmseg.data_check import check
    from ddpmseg.formats import READERS

    if not Path(args.path).exists():
        raise InputProblem(f"{args.path}: no such file or folder; give the dataset's folder (or a COCO JSON)")
    if args.format not in ("auto", "paper", *READERS):
        raise InputProblem(f"--format {args.format}: unknown; give auto, paper or one of {', '.join(sorted(READERS))}")
    mapped = [c for c in args.classes or [] if "=" in c]
    if mapped and len(mapped) != len(args.classes):
        raise InputProblem("--classes: give either names (image_mask, paper layout) or OLD=NEW pairs (OLD= drops)")
    classes = ({old: new or None for old, _, new in (c.partition("=") for c in mapped)} if mapped
               else args.classes or None)
    try:
        split = yaml.safe_load(args.split) if args.split else {}
    except yaml.YAMLError as exc:
        raise InputProblem(f"--split {args.split!r}: not YAML ({exc}); e.g. --split '{{test_fraction: 0.2}}'") from exc
    if not isinstance(split, dict):
        raise InputProblem(f"--split {args.split!r}: give a mapping, e.g. '{{test_fraction: 0.2}}'")
    report = check(args.path, args.format, classes, split, args.unannotated, args.ignore_label)
    print("\n".join(report.lines))
    if report.problems:
        print(f"{len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}:")
        print("\n".join(f"  {problem}" for problem in report.problems))
        return 1
    print("no problems")
    return 0


def label_studio(args) -> None:
    """push: a label_next batch into a Label Studio project; pull: its finished annotations into
    the dataset (`ddpmseg.label_studio_sync`)."""
    from ddpmseg import label_studio_sync as sync

    if args.label_studio_command == "push":
        if not Path(args.batch).is_dir():
            raise InputProblem(f"{args.batch}: no such folder; give results/<dataset>/label_next (or its batch/)")
        server = sync.Server(args.url)
        done = sync.push(server, args.batch, args.project)
        print(f"{server.url}/projects/{done['project']}: {args.project!r} has {len(done['added'])} new tasks"
              f"{' (' + ', '.join(done['added']) + ')' if done['added'] else ''}; "
              f"{len(done['present'])} of the batch were there already")
        return
    from ddpmseg.config import load_config
    from ddpmseg.formats.dataset_labels import DatasetLabels
    from ddpmseg.plan.settle import settled_formats

    config = load_config(args.configfile)
    settings = (config.get("datasets") or {}).get(args.dataset)
    if settings is None:
        raise InputProblem(f"--dataset {args.dataset}: not a dataset of the config; give one of "
                           f"{', '.join(config.get('datasets') or {})}")
    if settings["path"] is None:
        raise InputProblem(f"--dataset {args.dataset}: the embedded generated dataset has no folder to write labels "
                           "into; pull into a dataset with a `path`")
    settled_formats({"datasets": {args.dataset: settings}})
    labels = DatasetLabels(settings["path"], settings, f"config: datasets.{args.dataset}")
    server = sync.Server(args.url)
    done = sync.pull(server, args.project, labels)
    skipped = ", ".join(f"{n} {why}" for why, n in done["skipped"].items() if n)
    print(f"{labels.added if done['added'] else settings['path']}: labels of {len(done['written'])} images written"
          f"{' (' + ', '.join(done['written']) + ')' if done['written'] else ''}, {len(done['unchanged'])} unchanged"
          f"{'; tasks skipped: ' + skipped if skipped else ''}")
    if not labels.named and done["added"]:
        print(f"The dataset's own files ({settings['format']}) are left as they are: add the labels to it in the "
              f"config:\n\ndatasets:\n  {args.dataset}:\n    added_labels: {labels.added.resolve()}\n")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="ddpmseg", description="Segment images with a trained ddpmseg segmenter "
                                   "bundle (results/<dataset>/<method>/seed<s>/segmenter, or distill_<pool>/.../"
                                   "segmenter for a distilled DeepLab), or describe one.")
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("segment", help="segment images: masks, uncertainty and overlays at their own size",
                              description="Segment image files, folders (recursively) and glob patterns with a "
                              "bundle; each image is brought to the bundle's size as its training images were and "
                              "segmented back at its own size. Writes OUT/masks/NAME.png (palette PNGs: pixel value "
                              "= class id), OUT/uncertainty/NAME.png (8-bit grey, 255 = the largest possible), "
                              "OUT/overlays/NAME.png (photo | prediction | uncertainty) and OUT/segment.json; NAME "
                              "is the path below a given folder, or the file's stem.")
    run.add_argument("bundle", metavar="BUNDLE", help="a segmenter bundle folder")
    run.add_argument("paths", metavar="PATH", nargs="+", help="image files, folders of images, or glob patterns "
                     "(quoted, e.g. 'photos/**/*.jpg')")
    run.add_argument("--out", required=True, metavar="DIR", help="the output folder (created)")
    run.add_argument("--device", default="cpu", help="torch device: cpu (default), cuda, cuda:1, mps")
    run.add_argument("--batch-size", type=int, default=16, metavar="N",
                     help="images whose features are extracted at once (default 16; memory grows with it)")
    run.add_argument("--no-overlays", action="store_true", help="skip the overlays (faster)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(run=segment)
    onnx = commands.add_parser("export", help="the bundle as one ONNX model (image in, labels, probabilities and "
                               "uncertainty out)",
                               description="Export a bundle (an ensemble with its feature source, the run's noise a "
                               "constant; or a distilled DeepLab) as one ONNX model: input `image` (1, S, S, 3) uint8 "
                               "at the bundle's size; outputs `labels` (1, S, S) int64, `probabilities` (1, C, S, S), "
                               "`uncertainty` (1, S, S) nats; the bundle's description in its metadata (`ddpmseg`). "
                               "Checked with onnxruntime against the bundle in torch.")
    onnx.add_argument("bundle", metavar="BUNDLE", help="a segmenter bundle folder")
    onnx.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write")
    onnx.add_argument("--check", nargs="+", metavar="PATH", default=[],
                      help="images to check the export on (default: two generated ones)")
    onnx.set_defaults(run=export)
    about = commands.add_parser("info", help="what a bundle is: classes, source, cells, checkpoint, scores",
                                description="Print a bundle's kind, classes, feature source and cells, its "
                                "checkpoint with sha256, where it was trained, and its run's test scores when the "
                                "results tree holds them.")
    about.add_argument("bundle", metavar="BUNDLE", help="a segmenter bundle folder")
    about.add_argument("--json", action="store_true", help="print the bundle's segmenter.json instead")
    about.set_defaults(run=info)
    data = commands.add_parser("data", help="check a dataset folder before a run").add_subparsers(
        dest="data_command", required=True, metavar="COMMAND")
    verify = data.add_parser("check", help="read a dataset folder as the workflow would; write nothing",
                             description="Read a dataset folder (or a COCO JSON) exactly as the workflow's "
                             "preparation would, write nothing, and print the format found, images per subset and "
                             "split, labelled and unlabeled counts, the classes with their pixel shares, the image "
                             "sizes and orientation tags, and every problem, one per line. Exit 0: usable; 1: "
                             "problems in the data; 2: unusable arguments.")
    verify.add_argument("path", metavar="PATH", help="the dataset's folder, as the config's `path`")
    verify.add_argument("--format", default="auto", help="the config's `format` (default auto; paper: the paper's "
                        "layout)")
    verify.add_argument("--classes", nargs="+", metavar="NAME", help="the config's `classes`: names in id order, or "
                        "OLD=NEW pairs (OLD= drops the class)")
    verify.add_argument("--split", metavar="YAML", help="the config's `split`, e.g. '{test_fraction: 0.2}'")
    verify.add_argument("--unannotated", default="auto", help="the config's `unannotated` (default auto)")
    verify.add_argument("--ignore-label", type=int, metavar="N", help="the config's `ignore_label` (default 255)")
    verify.set_defaults(run=data_check)
    studio = commands.add_parser("label-studio", help="label the next batch in Label Studio and pull the labels back",
                                 description="Talk to a Label Studio server (--url, else LABEL_STUDIO_URL, else "
                                 "http://localhost:8080) with the token in LABEL_STUDIO_API_KEY (a personal access "
                                 "token, or a legacy one). docs/label_next.md#label-with-label-studio").add_subparsers(
        dest="label_studio_command", required=True, metavar="COMMAND")
    send = studio.add_parser("push", help="a label_next batch into a project, its masks as predictions",
                             description="Upload the batch's images into the project (created with the dataset's "
                             "classes and colours where missing), each with the ensemble's masks as a prediction "
                             "scored by its uncertainty and its rank as task data; images already there are left.")
    send.add_argument("batch", metavar="BATCH", help="results/<dataset>/label_next (or its batch/ folder)")
    receive = studio.add_parser("pull", help="the project's finished annotations into the dataset",
                                description="Write every task's latest annotation (not cancelled) into the dataset "
                                "in its own form: the paper's layout gets real/train/NAME + NAME.npy, image_mask "
                                "gets masks/NAME.png, any other format its `added_labels` folder (printed to add "
                                "to the config where it names none). Files are written whole and only where they "
                                "change; then rerun the same snakemake command.")
    receive.add_argument("--configfile", nargs="+", default=[], metavar="FILE",
                         help="the config files the workflow runs with, over ./config.yaml (as snakemake's)")
    receive.add_argument("--dataset", required=True, metavar="NAME", help="the dataset (a key of `datasets:`)")
    for command in (send, receive):
        command.add_argument("--project", required=True, metavar="TITLE", help="the Label Studio project's title")
        command.add_argument("--url", metavar="URL", help="the Label Studio server (default: LABEL_STUDIO_URL, else "
                             "http://localhost:8080)")
        command.set_defaults(run=label_studio)
    return main


def main(argv=None) -> int:
    from ddpmseg.errors import UserError

    args = parser().parse_args(argv)
    if getattr(args, "batch_size", 1) < 1:
        parser().error("--batch-size must be at least 1")
    try:
        status = args.run(args)
    except (InputProblem, UserError) as exc:
        if args.command == "data" and not isinstance(exc, InputProblem):  # the data's own problem
            print(f"ddpmseg data check: {exc}", file=sys.stderr)
            return 1
        print(f"ddpmseg {args.command}: {exc}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
