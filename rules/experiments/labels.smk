# Table 4 of the paper: fewer labelled training images. For every count of `experiments.labels`
# each seed trains Table 2's ensemble on a nested subset of its own (ddpmseg.experiments.labels),
# reading Table 2's train stores; the test split is predicted and scored as in Table 2 (the
# predictions are temporary: only the scores are kept). The whole split is Table 2's run.


use rule train_ensemble as train_ensemble_labels with:
    output:
        models=per_seed("results/{{dataset}}/{{method}}/labels{{labels}}/seed{seed}/ensemble.pt"),
        histories=per_seed("results/{{dataset}}/{{method}}/labels{{labels}}/seed{seed}/training_history.csv"),
        features="results/{dataset}/{method}/labels{labels}/features.json",
        subsets="results/{dataset}/{method}/labels{labels}/subsets.json",
    params:
        labelled_images=lambda wc: int(wc.labels),
    log:
        "logs/train_ensemble_labels/{dataset}_{method}_{labels}.log",
    benchmark:
        "benchmarks/runs/train_ensemble_labels/{dataset}_{method}_{labels}.tsv"


use rule predict as predict_labels with:
    input:
        models=per_seed("results/{{dataset}}/{{method}}/labels{{labels}}/seed{seed}/ensemble.pt"),
        data="results/{dataset}/data/test.zarr",
        stores=lambda wc: folders(PLAN.stores.method_stores(wc.dataset, wc.method, "test")),
    output:
        predictions=[temp(directory(p)) for p in per_seed("results/{{dataset}}/{{method}}/labels{{labels}}/seed{seed}/predictions.zarr")],
        masks=[temp(directory(p)) for p in per_seed("results/{{dataset}}/{{method}}/labels{{labels}}/seed{seed}/masks")],
    params:
        stores=lambda wc: PLAN.stores.method_stores(wc.dataset, wc.method, "test"),
    log:
        "logs/predict_labels/{dataset}_{method}_{labels}.log",
    benchmark:
        "benchmarks/runs/predict_labels/{dataset}_{method}_{labels}.tsv"


use rule evaluate as evaluate_labels with:
    input:
        predictions=per_seed("results/{{dataset}}/{{method}}/labels{{labels}}/seed{seed}/predictions.zarr"),
        data="results/{dataset}/data/test.zarr",
    output:
        metrics=per_seed("results/{{dataset}}/{{method}}/labels{{labels}}/seed{seed}/metrics.json"),
        per_class=per_seed("results/{{dataset}}/{{method}}/labels{{labels}}/seed{seed}/per_class_iou.csv"),
    log:
        "logs/evaluate_labels/{dataset}_{method}_{labels}.log",


rule table4:
    input:
        metrics=PLAN.labels.metrics(),
        train=expand("results/{dataset}/data/train.zarr", dataset=PLAN.labels.datasets()),
    output:
        table=report("results/table4.csv", caption="../report/table4.rst", category="Experiments"),
        long="results/table4_long.csv",
    params:
        runs=[(d, key, n, PLAN.run_model_seed(d, key), s) for d, key, n, s in PLAN.labels.runs()],
        datasets=PLAN.labels.datasets(),
        names=PLAN.names(),
        reported={d: config["datasets"][d]["experiments"]["reported"]["table4"] for d in PLAN.labels.datasets()},
    log:
        "logs/table4.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        CONDA_ENV
    script:
        workflow_script("table4.py")
