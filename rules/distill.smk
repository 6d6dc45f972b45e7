# Distilling a method's ensemble into torchvision's DeepLabV3 (the paper's generate_dataset.py
# and train_deeplab.py): a pool of images (ddpm: samples of the diffusion model, one cached job
# per batch; unlabeled: the dataset's own unlabeled images) labelled by each distill seed's
# ensemble bundle, the most uncertain share dropped, one DeepLab per seed trained on the rest and
# scored on the real test split: Table 2's rows DatasetDDPM and "DDPM -> DeepLab (unlabeled)".
# The paper's released synthetic datasets (released_ddpm / released_gan) come labelled: they are
# written once in the same layout and take the same filtering and DeepLab training.

DISTILL_RUN = layout.distill_run("{pool}")  # the run folder of a pool's DeepLabs


rule sample_diffusion:
    input:
        lambda wc: PLAN.distill.sampled_checkpoint(wc.dataset),
    output:
        directory(layout.distill("{dataset}", "ddpm", "samples/batch{batch}.zarr")),
    params:
        flags=lambda wc: dataset_settings(wc)["diffusion"]["flags"],
        n_samples=lambda wc: PLAN.distill.settings(wc.dataset)["n_samples"],
        sample_batch=lambda wc: PLAN.distill.settings(wc.dataset)["sample_batch"],
        respacing=lambda wc: PLAN.distill.settings(wc.dataset)["timestep_respacing"],
        seed=lambda wc: PLAN.distill.settings(wc.dataset)["sample_seed"],
        torch_threads=lambda wc: dataset_settings(wc)["features"]["threads"],
    log:
        "logs/sample_diffusion/{dataset}_{batch}.log",
    benchmark:
        "benchmarks/runs/sample_diffusion/{dataset}_{batch}.tsv"
    threads: lambda wc: dataset_settings(wc)["features"]["threads"]
    resources:
        gpu=1,
        mem_mb=8000,
    conda:
        CONDA_ENV
    script:
        workflow_script("sample_diffusion.py")


rule label_pool:
    input:
        images=get_pool_images,
        bundle=lambda wc: PLAN.distill.labelling_bundle(wc.dataset, wc.seed),
    output:
        directory(layout.distill("{dataset}", "{pool}", "labelled/seed{seed}/batch{batch}")),
    log:
        "logs/label_pool/{dataset}_{pool}_{seed}_{batch}.log",
    benchmark:
        "benchmarks/runs/label_pool/{dataset}_{pool}_{seed}_{batch}.tsv"
    threads: lambda wc: dataset_settings(wc)["features"]["threads"]
    resources:
        gpu=1,
        mem_mb=lambda wc: ensemble_mem_mb(wc) + 4000,
    conda:
        CONDA_ENV
    script:
        workflow_script("label_pool.py")


rule released_pool:
    input:
        released=lambda wc: PLAN.distill.released_source(wc.dataset, wc.pool),
        split=layout.split("{dataset}", "test"),
    output:
        directory(layout.distill("{dataset}", "{pool}", "labelled/released")),
    params:
        path=lambda wc: PLAN.distill.settings(wc.dataset)["released"][wc.pool.removeprefix("released_")],
    log:
        "logs/released_pool/{dataset}_{pool}.log",
    benchmark:
        "benchmarks/runs/released_pool/{dataset}_{pool}.tsv"
    wildcard_constraints:
        pool="released_ddpm|released_gan",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        workflow_script("released_pool.py")


rule select_pool:
    input:
        pool=get_labelled_pool,
        split=layout.split("{dataset}", "test"),
    output:
        selection=layout.distill("{dataset}", "{pool}", "labelled/seed{seed}/selection.csv"),
        figure=report(layout.distill("{dataset}", "{pool}", "labelled/seed{seed}/samples.png"), caption="report/pool.rst",
                      category="{dataset}", subcategory="distillation", labels={"pool": "{pool}", "MLP seed": "{seed}"}),
    params:
        portion=lambda wc: PLAN.distill.settings(wc.dataset)["uncertainty_portion"],
        title=lambda wc: PLAN.distill.pool_title(wc.dataset, wc.pool, wc.seed),
    log:
        "logs/select_pool/{dataset}_{pool}_{seed}.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        workflow_script("select_pool.py")


rule train_deeplab:
    input:
        unpack(get_deeplab_inputs),
    output:
        bundle=directory(layout.run("{dataset}", DISTILL_RUN, "{seed}", "segmenter")),
        history=layout.run("{dataset}", DISTILL_RUN, "{seed}", "training_history.csv"),
        outcome=layout.run("{dataset}", DISTILL_RUN, "{seed}", "training.json"),
    params:
        settings=lambda wc: PLAN.distill.deeplab(wc.dataset),
        convention=lambda wc: dataset_settings(wc)["evaluation"]["miou_convention"],
        torch_threads=lambda wc: PLAN.distill.settings(wc.dataset)["deeplab"]["threads"],
    log:
        "logs/train_deeplab/{dataset}_{pool}_{seed}.log",
    benchmark:
        "benchmarks/runs/train_deeplab/{dataset}_{pool}_{seed}.tsv"
    threads: lambda wc: PLAN.distill.settings(wc.dataset)["deeplab"]["threads"]
    resources:
        gpu=1,
        mem_mb=8000,
    conda:
        CONDA_ENV
    script:
        workflow_script("train_deeplab.py")


rule predict_distill:
    input:
        bundles=[layout.run("{dataset}", DISTILL_RUN, "{seed}", "segmenter")],
        data=layout.split("{dataset}", "test"),
    output:
        predictions=[directory(layout.run("{dataset}", DISTILL_RUN, "{seed}", "predictions.zarr"))],
        masks=[directory(layout.run("{dataset}", DISTILL_RUN, "{seed}", "masks"))],
    params:
        resolution=lambda wc: dataset_settings(wc)["evaluation"]["resolution"],
    log:
        "logs/predict_distill/{dataset}_{pool}_{seed}.log",
    benchmark:
        "benchmarks/runs/predict_distill/{dataset}_{pool}_{seed}.tsv"
    threads: lambda wc: PLAN.distill.settings(wc.dataset)["deeplab"]["threads"]
    resources:
        gpu=1,
        mem_mb=4000,
    conda:
        CONDA_ENV
    script:
        workflow_script("predict_bundle.py")


use rule evaluate as evaluate_distill with:
    input:
        predictions=[layout.run("{dataset}", DISTILL_RUN, "{seed}", "predictions.zarr")],
        data=layout.split("{dataset}", "test"),
    output:
        metrics=[layout.run("{dataset}", DISTILL_RUN, "{seed}", "metrics.json")],
        per_class=[layout.run("{dataset}", DISTILL_RUN, "{seed}", "per_class_iou.csv")],
    log:
        "logs/evaluate_distill/{dataset}_{pool}_{seed}.log",
