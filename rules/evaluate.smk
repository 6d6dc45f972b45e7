# Stage 5: segment the test images (majority and soft vote, JS uncertainty), score them, and
# draw an overview per dataset. Prediction and scoring are one job per (dataset, method), for all seeds.


rule predict:
    input:
        models=per_seed(layout.run("{dataset}", "{method}", "{seed}", "ensemble.pt")),
        data=layout.split("{dataset}", "test"),
        stores=lambda wc: folders(PLAN.stores.method_stores(wc.dataset, wc.method, "test")),
    output:
        predictions=[directory(p) for p in per_seed(layout.run("{dataset}", "{method}", "{seed}", "predictions.zarr"))],
        masks=[directory(p) for p in per_seed(layout.run("{dataset}", "{method}", "{seed}", "masks"))],
    params:
        stores=lambda wc: PLAN.stores.method_stores(wc.dataset, wc.method, "test"),
        vote=lambda wc: dataset_settings(wc)["evaluation"]["vote"],
        resolution=lambda wc: dataset_settings(wc)["evaluation"]["resolution"],
        gpu=ensemble_gpu,
        precision=lambda wc: dataset_settings(wc)["ensemble"]["precision"],
        torch_threads=lambda wc: dataset_settings(wc)["threads"],
        runs_own_stores=runs_own_stores,
    log:
        "logs/predict/{dataset}_{method}.log",
    benchmark:
        "benchmarks/runs/predict/{dataset}_{method}.tsv"
    threads: lambda wc: dataset_settings(wc)["threads"]
    resources:
        mem_mb=4000,
        gpu=ensemble_gpu,
    conda:
        CONDA_ENV
    script:
        workflow_script("predict.py")


rule evaluate:
    input:
        predictions=per_seed(layout.run("{dataset}", "{method}", "{seed}", "predictions.zarr")),
        data=layout.split("{dataset}", "test"),
        training_labels=per_seed(layout.run("{dataset}", "{method}", "{seed}", "training_labels.json")),
    output:
        metrics=per_seed(layout.run("{dataset}", "{method}", "{seed}", "metrics.json")),
        per_class=[
            report(layout.run("{dataset}", "{method}", s, "per_class_iou.csv"), caption="report/per_class_iou.rst",
                   category="{dataset}", subcategory="{method}", labels={"result": "per-class IoU", "MLP seed": str(s)})
            for s in SEEDS
        ],
    params:
        evaluation=lambda wc: dataset_settings(wc)["evaluation"],
    log:
        "logs/evaluate/{dataset}_{method}.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        workflow_script("evaluate.py")


rule overview:
    input:
        predictions=lambda wc: layout.run(wc.dataset, METHODS[0], SEEDS[0], "predictions.zarr"),
        data=layout.split("{dataset}", "test"),
    output:
        report(layout.experiment("{dataset}", "overview.png"), caption="report/overview.rst", category="{dataset}",
               subcategory="overview", labels={"figure": "predictions and uncertainty"}),
    params:
        n_images=lambda wc: dataset_settings(wc)["evaluation"]["overview_images"],
        vote=lambda wc: dataset_settings(wc)["evaluation"]["vote"],
        title=lambda wc: f"{wc.dataset}: {METHODS[0]} ensemble, seed {SEEDS[0]}, {dataset_settings(wc)['evaluation']['vote']} vote",
    log:
        "logs/overview/{dataset}.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        workflow_script("overview.py")


rule reliability:
    input:
        metrics=get_reliability_metrics,
    output:
        figure=report(layout.experiment("{dataset}", "reliability.png"), caption="report/reliability.rst",
                      category="{dataset}", subcategory="overview", labels={"figure": "reliability of the soft vote"}),
        table=layout.experiment("{dataset}", "reliability.csv"),
    params:
        methods=lambda wc: [PLAN.plan_of(d, key).name for d, key, _ in RUNS if d == wc.dataset],
        title=lambda wc: f"{wc.dataset}: test pixels of every seed, per method",
    log:
        "logs/reliability/{dataset}.log",
    benchmark:
        "benchmarks/runs/reliability/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        CONDA_ENV
    script:
        workflow_script("reliability.py")
