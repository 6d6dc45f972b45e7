# Table 3 of the paper: the ensembles trained on real against synthetic annotated images. Each
# of a dataset's `annotated` sets (e.g. the paper's annotated DDPM samples) is validated and
# prepared like a split, its features extracted by the method's extraction rule (split
# annotated-<name>), and the distill method's ensembles of every seed trained on it and scored on
# the real test split (the predictions are temporary: only the scores are kept). The real column
# is Table 2's run; DatasetDDPM and the released synthetic datasets' DeepLabs join the table.

ANNOTATED_RUN = layout.trained_on("{method}", "{name}")  # the run folder of an annotated set


use rule prepare_folder as prepare_annotated with:
    input:
        folder=lambda wc: PLAN.files.annotated_source(wc.dataset, wc.name),
        split=layout.split("{dataset}", "test"),
    output:
        directory(layout.split("{dataset}", "annotated-{name}")),
    params:
        settings=lambda wc: {key: dataset_settings(wc)[key] for key in ("image_size", "non_square", "resize")},
        folder=lambda wc: PLAN.files.annotated_folder(wc.dataset, wc.name),
        kind="annotated",
        manifest=lambda wc: PLAN.files.annotated_manifest(wc.dataset, wc.name),
    log:
        "logs/prepare_annotated/{dataset}_{name}.log",
    benchmark:
        "benchmarks/runs/prepare_annotated/{dataset}_{name}.tsv"


use rule train_ensemble as train_ensemble_annotated with:
    input:
        data=layout.split("{dataset}", "annotated-{name}"),
        stores=lambda wc: folders(PLAN.stores.method_stores(wc.dataset, wc.method, f"annotated-{wc.name}")),
    output:
        models=per_seed(layout.run("{dataset}", ANNOTATED_RUN, "{seed}", "ensemble.pt")),
        histories=per_seed(layout.run("{dataset}", ANNOTATED_RUN, "{seed}", "training_history.csv")),
        training_labels=per_seed(layout.run("{dataset}", ANNOTATED_RUN, "{seed}", "training_labels.json")),
        features=layout.run_file("{dataset}", ANNOTATED_RUN, "features.json"),
    params:
        stores=lambda wc: PLAN.stores.method_stores(wc.dataset, wc.method, f"annotated-{wc.name}"),
    log:
        "logs/train_ensemble_annotated/{dataset}_{method}_{name}.log",
    benchmark:
        "benchmarks/runs/train_ensemble_annotated/{dataset}_{method}_{name}.tsv"


use rule predict as predict_annotated with:
    input:
        models=per_seed(layout.run("{dataset}", ANNOTATED_RUN, "{seed}", "ensemble.pt")),
        data=layout.split("{dataset}", "test"),
        stores=lambda wc: folders(PLAN.stores.method_stores(wc.dataset, wc.method, "test")),
    output:
        predictions=[temp(directory(p)) for p in per_seed(layout.run("{dataset}", ANNOTATED_RUN, "{seed}", "predictions.zarr"))],
        masks=[temp(directory(p)) for p in per_seed(layout.run("{dataset}", ANNOTATED_RUN, "{seed}", "masks"))],
    params:
        stores=lambda wc: PLAN.stores.method_stores(wc.dataset, wc.method, "test"),
    log:
        "logs/predict_annotated/{dataset}_{method}_{name}.log",
    benchmark:
        "benchmarks/runs/predict_annotated/{dataset}_{method}_{name}.tsv"


use rule evaluate as evaluate_annotated with:
    input:
        predictions=per_seed(layout.run("{dataset}", ANNOTATED_RUN, "{seed}", "predictions.zarr")),
        data=layout.split("{dataset}", "test"),
        training_labels=per_seed(layout.run("{dataset}", ANNOTATED_RUN, "{seed}", "training_labels.json")),
    output:
        metrics=per_seed(layout.run("{dataset}", ANNOTATED_RUN, "{seed}", "metrics.json")),
        per_class=per_seed(layout.run("{dataset}", ANNOTATED_RUN, "{seed}", "per_class_iou.csv")),
    log:
        "logs/evaluate_annotated/{dataset}_{method}_{name}.log",


use rule segmenter as segmenter_annotated with:
    output:
        directory(layout.run("{dataset}", ANNOTATED_RUN, "{seed}", "segmenter")),
    log:
        "logs/segmenter_annotated/{dataset}_{method}_{name}_{seed}.log",


rule table3:
    input:
        metrics=[path for d in PLAN.distill.table3_datasets for _, _, path in PLAN.distill.table3_runs(d)],
    output:
        table=report(layout.table("table3.csv"), caption="../report/table3.rst", category="Experiments"),
        long=layout.table("table3_long.csv"),
    params:
        runs=[(d, row, train) for d in PLAN.distill.table3_datasets for row, train, _ in PLAN.distill.table3_runs(d)],
        reported={d: config["datasets"][d]["experiments"]["reported"]["table3"] for d in PLAN.distill.table3_datasets},
    log:
        "logs/table3.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        CONDA_ENV
    script:
        workflow_script("table3.py")
