# How much diffusion training the features need: ONE diffusion training run per dataset to the
# largest of `experiments.budget_steps`, keeping its EMA weights at each of those steps; the
# followed method's cells (DDPM) are extracted from every snapshot and Table 2's ensemble is
# trained and scored on them (predictions temporary). The other methods are Table 2's runs,
# drawn as horizontal lines.


for _dataset in BUDGET_DATASETS:
    _method = budget_method(_dataset)
    _plan = PLANS[_dataset][_method]
    _steps = budget_steps(_dataset)

    rule:
        name:
            f"train_diffusion_budget_{_dataset}"
        input:
            "results/{dataset}/data/unlabeled.zarr",
        output:
            checkpoint="results/{dataset}/budget/diffusion/model.pt",
            flags="results/{dataset}/budget/diffusion/flags.json",
            loss_csv="results/{dataset}/budget/diffusion/loss.csv",
            loss_png="results/{dataset}/budget/diffusion/loss.png",
            outcome="results/{dataset}/budget/diffusion/training.json",
            snapshots=[f"results/{{dataset}}/budget/diffusion/step{n}.pt" for n in _steps],
        params:
            flags=config["datasets"][_dataset]["diffusion"]["flags"],
            train={**{k: v for k, v in config["datasets"][_dataset]["diffusion"]["train"].items() if k != "threads"},
                   "max_steps": _steps[-1]},
            seed=model_seeds(_dataset)[0],
            snapshot_steps=_steps,
            torch_threads=config["datasets"][_dataset]["diffusion"]["train"]["threads"],
        log:
            "logs/train_diffusion_budget/{dataset}.log",
        benchmark:
            "benchmarks/runs/train_diffusion_budget/{dataset}.tsv"
        wildcard_constraints:
            dataset=_dataset,
        threads: config["datasets"][_dataset]["diffusion"]["train"]["threads"]
        resources:
            gpu=1,
            mem_mb=8000,
            runtime=int(config["datasets"][_dataset]["diffusion"]["train"]["max_minutes"] or 24 * 60) + 30,
        conda:
            CONDA_ENV
        script:
            workflow_script("train_diffusion.py")

    rule:
        name:
            f"extract_budget_{_dataset}"
        input:
            data="results/{dataset}/data/{split}.zarr",
            checkpoint="results/{dataset}/budget/diffusion/step{step}.pt",
        output:
            [directory(f"results/{{dataset}}/budget/features/step{{step}}/{{split}}/{backbones.store_name(layer, t)}")
             for layer, t in fixed_cells(_dataset, _method)],
        params:
            dataset=_dataset,
            plan=_plan,
            extraction=extraction_settings(_dataset),
            layers=_plan["layers"],
            timesteps=_plan["timesteps"],
            model_seed=model_seeds(_dataset)[0],
            noise_seed=noise_base_seed(_dataset),
            torch_threads=config["datasets"][_dataset]["features"]["threads"],
        log:
            "logs/extract_budget/{dataset}_{step}_{split}.log",
        benchmark:
            "benchmarks/runs/extract_budget/{dataset}_{step}_{split}.tsv"
        wildcard_constraints:
            dataset=_dataset,
            split="train|test",
        threads: config["datasets"][_dataset]["features"]["threads"]
        resources:
            gpu=1,
            mem_mb=8000,
        conda:
            CONDA_ENV
        script:
            workflow_script("extract_features.py")


use rule train_ensemble as train_ensemble_budget with:
    input:
        data="results/{dataset}/data/train.zarr",
        stores=lambda wc: budget_stores(wc.dataset, "train", wc.step),
    output:
        models=per_seed("results/{{dataset}}/budget/step{{step}}/{{method}}/seed{seed}/ensemble.pt"),
        histories=per_seed("results/{{dataset}}/budget/step{{step}}/{{method}}/seed{seed}/training_history.csv"),
        features="results/{dataset}/budget/step{step}/{method}/features.json",
    params:
        runs_own_stores=False,
    log:
        "logs/train_ensemble_budget/{dataset}_{step}_{method}.log",
    benchmark:
        "benchmarks/runs/train_ensemble_budget/{dataset}_{step}_{method}.tsv"


use rule predict as predict_budget with:
    input:
        models=per_seed("results/{{dataset}}/budget/step{{step}}/{{method}}/seed{seed}/ensemble.pt"),
        data="results/{dataset}/data/test.zarr",
        stores=lambda wc: budget_stores(wc.dataset, "test", wc.step),
    output:
        predictions=[temp(directory(p)) for p in per_seed("results/{{dataset}}/budget/step{{step}}/{{method}}/seed{seed}/predictions.zarr")],
        masks=[temp(directory(p)) for p in per_seed("results/{{dataset}}/budget/step{{step}}/{{method}}/seed{seed}/masks")],
    params:
        runs_own_stores=False,
    log:
        "logs/predict_budget/{dataset}_{step}_{method}.log",
    benchmark:
        "benchmarks/runs/predict_budget/{dataset}_{step}_{method}.tsv"


use rule evaluate as evaluate_budget with:
    input:
        predictions=per_seed("results/{{dataset}}/budget/step{{step}}/{{method}}/seed{seed}/predictions.zarr"),
        data="results/{dataset}/data/test.zarr",
    output:
        metrics=per_seed("results/{{dataset}}/budget/step{{step}}/{{method}}/seed{seed}/metrics.json"),
        per_class=per_seed("results/{{dataset}}/budget/step{{step}}/{{method}}/seed{seed}/per_class_iou.csv"),
    log:
        "logs/evaluate_budget/{dataset}_{step}_{method}.log",


rule budget_curve:
    input:
        metrics=budget_metrics,
        training="results/{dataset}/budget/diffusion/training.json",
    output:
        table=report("results/{dataset}/budget_curve.csv", caption="../report/budget_curve.rst", category="{dataset}",
                     subcategory="experiments", labels={"result": "budget curve table"}),
        figure=report("results/{dataset}/budget_curve.png", caption="../report/budget_curve.rst", category="{dataset}",
                      subcategory="experiments", labels={"result": "budget curve figure"}),
    params:
        runs=lambda wc: budget_runs(wc.dataset),
        names=lambda wc: {key: plan_of(wc.dataset, key)["name"] for key, _, _ in budget_runs(wc.dataset)},
        table2_steps=lambda wc: ds(wc)["diffusion"]["train"]["max_steps"],
    log:
        "logs/budget_curve/{dataset}.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        CONDA_ENV
    script:
        workflow_script("budget_curve.py")
