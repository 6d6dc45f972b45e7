# Table 5 of the paper: stochastic feature extraction (ddpmseg.experiments.noise). For every
# method of a source that takes timesteps, its cells are extracted again with one noise tensor
# per timestep ("+ -") and with noise of its own for every image and timestep ("- -": K train
# draws, one test draw of another seed); Table 2's ensemble is trained and scored on each
# variant as in Table 2 (predictions temporary). The "+ +" row is Table 2's run.

NOISE_RUN = layout.noise_run("{method}", "{variant}")  # the run folder of a noise variant


use rule train_ensemble as train_ensemble_noise with:
    input:
        data=layout.split("{dataset}", "train"),
        stores=lambda wc: folders(PLAN.noise.stores(wc.dataset, wc.method, "train", wc.variant)),
    output:
        models=per_seed(layout.run("{dataset}", NOISE_RUN, "{seed}", "ensemble.pt")),
        histories=per_seed(layout.run("{dataset}", NOISE_RUN, "{seed}", "training_history.csv")),
        training_labels=per_seed(layout.run("{dataset}", NOISE_RUN, "{seed}", "training_labels.json")),
        features=layout.run_file("{dataset}", NOISE_RUN, "features.json"),
    params:
        stores=lambda wc: PLAN.noise.stores(wc.dataset, wc.method, "train", wc.variant),
        runs_own_stores=False,
        noise_draws=lambda wc: dataset_settings(wc)["experiments"]["noise_draws"] if wc.variant == "fresh" else 1,
    log:
        "logs/train_ensemble_noise/{dataset}_{method}_{variant}.log",
    benchmark:
        "benchmarks/runs/train_ensemble_noise/{dataset}_{method}_{variant}.tsv"


use rule predict as predict_noise with:
    input:
        models=per_seed(layout.run("{dataset}", NOISE_RUN, "{seed}", "ensemble.pt")),
        data=layout.split("{dataset}", "test"),
        stores=lambda wc: folders(PLAN.noise.stores(wc.dataset, wc.method, "test", wc.variant)),
    output:
        predictions=[temp(directory(p)) for p in per_seed(layout.run("{dataset}", NOISE_RUN, "{seed}", "predictions.zarr"))],
        masks=[temp(directory(p)) for p in per_seed(layout.run("{dataset}", NOISE_RUN, "{seed}", "masks"))],
    params:
        stores=lambda wc: PLAN.noise.stores(wc.dataset, wc.method, "test", wc.variant),
        runs_own_stores=False,
    log:
        "logs/predict_noise/{dataset}_{method}_{variant}.log",
    benchmark:
        "benchmarks/runs/predict_noise/{dataset}_{method}_{variant}.tsv"


use rule evaluate as evaluate_noise with:
    input:
        predictions=per_seed(layout.run("{dataset}", NOISE_RUN, "{seed}", "predictions.zarr")),
        data=layout.split("{dataset}", "test"),
        training_labels=per_seed(layout.run("{dataset}", NOISE_RUN, "{seed}", "training_labels.json")),
    output:
        metrics=per_seed(layout.run("{dataset}", NOISE_RUN, "{seed}", "metrics.json")),
        per_class=per_seed(layout.run("{dataset}", NOISE_RUN, "{seed}", "per_class_iou.csv")),
    log:
        "logs/evaluate_noise/{dataset}_{method}_{variant}.log",


rule table5:
    input:
        metrics=PLAN.noise.metrics(),
    output:
        table=report(layout.table("table5.csv"), caption="../report/table5.rst", category="Experiments"),
        long=layout.table("table5_long.csv"),
    params:
        runs=[(d, key, v, PLAN.run_model_seed(d, key), s) for d, key, v, s in PLAN.noise.runs()],
        names=PLAN.names(),
        reported={d: config["datasets"][d]["experiments"]["reported"].get("table5") for d in DATASETS},
        draws={d: config["datasets"][d]["experiments"]["noise_draws"] for d in DATASETS},
    log:
        "logs/table5.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        CONDA_ENV
    script:
        workflow_script("table5.py")
