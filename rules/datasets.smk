# Stage 1: the datasets. The embedded default is generated; every dataset is validated as a
# whole before anything is written, then resized to the model's resolution into Zarr groups: the
# labelled splits in one job, the unlabeled pool in another.
# The keys of a dataset's settings that its preparation reads.
DATASET_KEYS = ("image_size", "non_square", "max_train", "max_test", "classes", "ignore_label", "resize", "format",
                "unannotated", "split", "unlabeled", "added_labels")


rule generate_default_dataset:
    output:
        directory("resources/{dataset}/source"),
    params:
        settings=lambda wc: dataset_settings(wc)["generate"],
    log:
        "logs/generate_default_dataset/{dataset}.log",
    benchmark:
        "benchmarks/runs/generate_default_dataset/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        workflow_script("generate_default_dataset.py")


rule prepare_dataset:
    input:
        lambda wc: PLAN.files.source(wc.dataset),
    output:
        train=directory(layout.split("{dataset}", "train")),
        test=directory(layout.split("{dataset}", "test")),
        summary=layout.data("{dataset}", "summary.json"),
    params:
        settings=lambda wc: {key: dataset_settings(wc)[key] for key in DATASET_KEYS},
        root=lambda wc: PLAN.files.dataset_root(wc.dataset),
        manifest=lambda wc: PLAN.files.manifest(wc.dataset),
        where=lambda wc: f"config: datasets.{wc.dataset}",
    log:
        "logs/prepare_dataset/{dataset}.log",
    benchmark:
        "benchmarks/runs/prepare_dataset/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        CONDA_ENV
    script:
        workflow_script("prepare_dataset.py")


# The unlabeled pool, a job of its own: labelling more images (label_next's batches copied into
# the training folder) reruns prepare_dataset and what follows it, never the diffusion model.
rule prepare_pool:
    input:
        lambda wc: PLAN.files.source(wc.dataset),
    output:
        unlabeled=directory(layout.split("{dataset}", "unlabeled")),
    params:
        settings=lambda wc: {key: dataset_settings(wc)[key] for key in DATASET_KEYS},
        root=lambda wc: PLAN.files.dataset_root(wc.dataset),
        manifest=lambda wc: PLAN.files.manifest(wc.dataset, "pool"),
        needs_unlabeled=lambda wc: PLAN.needs_unlabeled(wc.dataset),
        where=lambda wc: f"config: datasets.{wc.dataset}",
    log:
        "logs/prepare_pool/{dataset}.log",
    benchmark:
        "benchmarks/runs/prepare_pool/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        CONDA_ENV
    script:
        workflow_script("prepare_pool.py")


# Each image of a split cut into regions once (the dataset's `regions`), for region batches and
# the simulated loop's region arm.
rule cut_regions:
    input:
        layout.split("{dataset}", "{split}"),
    output:
        directory(layout.regions("{dataset}", "{split}")),
    params:
        settings=lambda wc: dataset_settings(wc)["regions"],
    log:
        "logs/cut_regions/{dataset}_{split}.log",
    benchmark:
        "benchmarks/runs/cut_regions/{dataset}_{split}.tsv"
    wildcard_constraints:
        split="train|unlabeled",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        workflow_script("cut_regions.py")
