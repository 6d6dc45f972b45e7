# Stage 4: the pixel classifier ensembles, one job per (dataset, method) that trains the
# ensembles of all seeds together, fed by streaming the training stores.


rule train_ensemble:
    input:
        data=layout.split("{dataset}", "train"),
        stores=lambda wc: folders(PLAN.stores.method_stores(wc.dataset, wc.method, "train")),
    output:
        models=per_seed(layout.run("{dataset}", "{method}", "{seed}", "ensemble.pt")),
        histories=per_seed(layout.run("{dataset}", "{method}", "{seed}", "training_history.csv")),
        training_labels=per_seed(layout.run("{dataset}", "{method}", "{seed}", "training_labels.json")),
        features=layout.run_file("{dataset}", "{method}", "features.json"),
    params:
        stores=lambda wc: PLAN.stores.method_stores(wc.dataset, wc.method, "train"),
        settings=lambda wc: dataset_settings(wc)["ensemble"],
        seeds=SEEDS,
        auto=lambda wc: PLAN.is_auto(wc.dataset, wc.method),
        torch_threads=lambda wc: dataset_settings(wc)["threads"],
        runs_own_stores=runs_own_stores,
    log:
        "logs/train_ensemble/{dataset}_{method}.log",
    benchmark:
        "benchmarks/runs/train_ensemble/{dataset}_{method}.tsv"
    threads: lambda wc: dataset_settings(wc)["threads"]
    resources:
        mem_mb=ensemble_mem_mb,
        gpu=ensemble_gpu,
    conda:
        CONDA_ENV
    script:
        workflow_script("train_ensemble.py")


rule cell_weights:
    input:
        models=per_seed(layout.run("{dataset}", "{method}", "{seed}", "ensemble.pt")),
        features=layout.run_file("{dataset}", "{method}", "features.json"),
    output:
        table=layout.run_file("{dataset}", "{method}", "cell_weights.csv"),
        figure=report(layout.figure("{dataset}", "{method}", "cell_weights.png"), caption="report/cell_weights.rst",
                      category="{dataset}", subcategory="probe sweep",
                      labels={"method": "{method}", "figure": "learned cell weights"}),
    params:
        seeds=SEEDS,
        name=lambda wc: PLAN.plan_of(wc.dataset, wc.method).name,
    log:
        "logs/cell_weights/{dataset}_{method}.log",
    benchmark:
        "benchmarks/runs/cell_weights/{dataset}_{method}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        CONDA_ENV
    script:
        workflow_script("cell_weights.py")
