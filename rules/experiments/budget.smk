# How much diffusion training the features need: ONE diffusion training run per dataset to the
# largest of `experiments.budget_steps`, keeping its EMA weights at each of those steps
# (rules/diffusion.smk); the followed method's cells (DDPM) are extracted from every snapshot
# (rules/features.smk) and Table 2's ensemble is trained and scored on them (predictions
# temporary). The other methods are Table 2's runs, drawn as horizontal lines.

BUDGET_RUN = layout.budget_run("{method}", "{step}")  # the run folder of a snapshot step


use rule train_ensemble as train_ensemble_budget with:
    input:
        data=layout.split("{dataset}", "train"),
        stores=lambda wc: folders(PLAN.budget.stores(wc.dataset, "train", wc.step)),
    output:
        models=per_seed(layout.run("{dataset}", BUDGET_RUN, "{seed}", "ensemble.pt")),
        histories=per_seed(layout.run("{dataset}", BUDGET_RUN, "{seed}", "training_history.csv")),
        training_labels=per_seed(layout.run("{dataset}", BUDGET_RUN, "{seed}", "training_labels.json")),
        features=layout.run_file("{dataset}", BUDGET_RUN, "features.json"),
    params:
        stores=lambda wc: PLAN.budget.stores(wc.dataset, "train", wc.step),
        runs_own_stores=False,
    log:
        "logs/train_ensemble_budget/{dataset}_{step}_{method}.log",
    benchmark:
        "benchmarks/runs/train_ensemble_budget/{dataset}_{step}_{method}.tsv"


use rule predict as predict_budget with:
    input:
        models=per_seed(layout.run("{dataset}", BUDGET_RUN, "{seed}", "ensemble.pt")),
        data=layout.split("{dataset}", "test"),
        stores=lambda wc: folders(PLAN.budget.stores(wc.dataset, "test", wc.step)),
    output:
        predictions=[temp(directory(p)) for p in per_seed(layout.run("{dataset}", BUDGET_RUN, "{seed}", "predictions.zarr"))],
        masks=[temp(directory(p)) for p in per_seed(layout.run("{dataset}", BUDGET_RUN, "{seed}", "masks"))],
    params:
        stores=lambda wc: PLAN.budget.stores(wc.dataset, "test", wc.step),
        runs_own_stores=False,
    log:
        "logs/predict_budget/{dataset}_{step}_{method}.log",
    benchmark:
        "benchmarks/runs/predict_budget/{dataset}_{step}_{method}.tsv"


use rule evaluate as evaluate_budget with:
    input:
        predictions=per_seed(layout.run("{dataset}", BUDGET_RUN, "{seed}", "predictions.zarr")),
        data=layout.split("{dataset}", "test"),
        training_labels=per_seed(layout.run("{dataset}", BUDGET_RUN, "{seed}", "training_labels.json")),
    output:
        metrics=per_seed(layout.run("{dataset}", BUDGET_RUN, "{seed}", "metrics.json")),
        per_class=per_seed(layout.run("{dataset}", BUDGET_RUN, "{seed}", "per_class_iou.csv")),
    log:
        "logs/evaluate_budget/{dataset}_{step}_{method}.log",


rule budget_curve:
    input:
        metrics=lambda wc: PLAN.budget.metrics(wc.dataset),
        training=layout.diffusion("{dataset}", layout.BUDGET_DIFFUSION, "training.json"),
    output:
        table=report(layout.experiment("{dataset}", "budget_curve.csv"), caption="../report/budget_curve.rst",
                     category="{dataset}", subcategory="experiments", labels={"result": "budget curve table"}),
        figure=report(layout.experiment("{dataset}", "budget_curve.png"), caption="../report/budget_curve.rst",
                      category="{dataset}", subcategory="experiments", labels={"result": "budget curve figure"}),
    params:
        runs=lambda wc: PLAN.budget.runs(wc.dataset),
        names=lambda wc: {key: PLAN.plan_of(wc.dataset, key).name for key, _, _ in PLAN.budget.runs(wc.dataset)},
        table2_steps=lambda wc: dataset_settings(wc)["diffusion"]["train"]["max_steps"],
    log:
        "logs/budget_curve/{dataset}.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        CONDA_ENV
    script:
        workflow_script("budget_curve.py")
