# Applying a trained model to new images: a self-describing bundle per (method folder, seed)
# (ddpmseg.segmenter: weights, classes, palette, image size, feature recipe with the checkpoint's
# sha256), and the segmentation of each configured folder (`segment:` of a dataset) with it.


rule segmenter:
    input:
        unpack(get_segmenter_inputs),
    output:
        directory(layout.run("{dataset}", "{method}", "{seed}", "segmenter")),
    params:
        plan=lambda wc: PLAN.plan_of(wc.dataset, wc.method).as_dict(),
        extraction=lambda wc: PLAN.stores.settings(wc.dataset),
        model_seed=lambda wc: PLAN.model_seed(wc.dataset, wc.method),
        noise_seed=lambda wc: PLAN.stores.noise_seed(wc.dataset, wc.method, int(wc.seed)),
        vote=lambda wc: dataset_settings(wc)["evaluation"]["vote"],
        extraction_threads=lambda wc: dataset_settings(wc)["features"]["threads"],
        prediction_threads=lambda wc: dataset_settings(wc)["threads"],
        ensemble_precision=lambda wc: dataset_settings(wc)["ensemble"]["precision"],
    log:
        "logs/segmenter/{dataset}_{method}_{seed}.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        workflow_script("segmenter_bundle.py")


rule prepare_folder:
    input:
        folder=lambda wc: PLAN.segment.folders[wc.dataset][wc.name]["path"],
        split=layout.split("{dataset}", "test"),
    output:
        directory(layout.split("{dataset}", "segment-{name}")),
    params:
        settings=lambda wc: {key: dataset_settings(wc)[key] for key in ("image_size", "non_square", "resize")},
        folder=lambda wc: PLAN.segment.folders[wc.dataset][wc.name]["path"],
        kind="segment",
        manifest=lambda wc: PLAN.segment.manifest(wc.dataset, wc.name),
    log:
        "logs/prepare_folder/{dataset}_{name}.log",
    benchmark:
        "benchmarks/runs/prepare_folder/{dataset}_{name}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        CONDA_ENV
    script:
        workflow_script("prepare_folder.py")


rule segment_folder:
    input:
        unpack(get_segment_inputs),
    output:
        directory(layout.segment("{dataset}", "{name}")),
    params:
        export=lambda wc: PLAN.segment.folders[wc.dataset][wc.name]["format"],
    log:
        "logs/segment_folder/{dataset}_{name}.log",
    benchmark:
        "benchmarks/runs/segment_folder/{dataset}_{name}.tsv"
    threads: lambda wc: dataset_settings(wc)["features"]["threads"]
    resources:
        mem_mb=lambda wc: ensemble_mem_mb(wc) + 4000,
        gpu=1,
    conda:
        CONDA_ENV
    script:
        workflow_script("segment_folder.py")
