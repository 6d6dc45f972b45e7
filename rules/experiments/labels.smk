# Table 4 of the paper: fewer labelled training images. For every count of `experiments.labels`
# each seed trains Table 2's ensemble on a nested subset of its own (ddpmseg.experiments.labels),
# reading Table 2's train stores; the test split is predicted and scored as in Table 2 (the
# predictions are temporary: only the scores are kept). The whole split is Table 2's run.

LABELS_RUN = layout.labels_run("{method}", "{labels}")  # the run folder of a label count


use rule train_ensemble as train_ensemble_labels with:
    output:
        models=per_seed(layout.run("{dataset}", LABELS_RUN, "{seed}", "ensemble.pt")),
        histories=per_seed(layout.run("{dataset}", LABELS_RUN, "{seed}", "training_history.csv")),
        training_labels=per_seed(layout.run("{dataset}", LABELS_RUN, "{seed}", "training_labels.json")),
        features=layout.run_file("{dataset}", LABELS_RUN, "features.json"),
        subsets=layout.run_file("{dataset}", LABELS_RUN, "subsets.json"),
    params:
        labelled_images=lambda wc: int(wc.labels),
    log:
        "logs/train_ensemble_labels/{dataset}_{method}_{labels}.log",
    benchmark:
        "benchmarks/runs/train_ensemble_labels/{dataset}_{method}_{labels}.tsv"


use rule predict as predict_labels with:
    input:
        models=per_seed(layout.run("{dataset}", LABELS_RUN, "{seed}", "ensemble.pt")),
        data=layout.split("{dataset}", "test"),
        stores=lambda wc: folders(PLAN.stores.method_stores(wc.dataset, wc.method, "test")),
    output:
        predictions=[temp(directory(p)) for p in per_seed(layout.run("{dataset}", LABELS_RUN, "{seed}", "predictions.zarr"))],
        masks=[temp(directory(p)) for p in per_seed(layout.run("{dataset}", LABELS_RUN, "{seed}", "masks"))],
    params:
        stores=lambda wc: PLAN.stores.method_stores(wc.dataset, wc.method, "test"),
    log:
        "logs/predict_labels/{dataset}_{method}_{labels}.log",
    benchmark:
        "benchmarks/runs/predict_labels/{dataset}_{method}_{labels}.tsv"


use rule evaluate as evaluate_labels with:
    input:
        predictions=per_seed(layout.run("{dataset}", LABELS_RUN, "{seed}", "predictions.zarr")),
        data=layout.split("{dataset}", "test"),
        training_labels=per_seed(layout.run("{dataset}", LABELS_RUN, "{seed}", "training_labels.json")),
    output:
        metrics=per_seed(layout.run("{dataset}", LABELS_RUN, "{seed}", "metrics.json")),
        per_class=per_seed(layout.run("{dataset}", LABELS_RUN, "{seed}", "per_class_iou.csv")),
    log:
        "logs/evaluate_labels/{dataset}_{method}_{labels}.log",


rule table4:
    input:
        metrics=PLAN.labels.metrics(),
        train=expand(layout.split("{dataset}", "train"), dataset=PLAN.labels.datasets()),
    output:
        table=report(layout.table("table4.csv"), caption="../report/table4.rst", category="Experiments"),
        long=layout.table("table4_long.csv"),
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
