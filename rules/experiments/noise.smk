# Table 5 of the paper: stochastic feature extraction (ddpmseg.experiments.noise). For every
# method of a source that takes timesteps, its cells are extracted again with one noise tensor
# per timestep ("+ -") and with noise of its own for every image and timestep ("- -": K train
# draws, one test draw of another seed); Table 2's ensemble is trained and scored on each
# variant as in Table 2 (predictions temporary). The "+ +" row is Table 2's run.


use rule train_ensemble as train_ensemble_noise with:
    input:
        data="results/{dataset}/data/train.zarr",
        stores=lambda wc: folders(PLAN.noise.stores(wc.dataset, wc.method, "train", wc.variant)),
    output:
        models=per_seed("results/{{dataset}}/{{method}}/noise_{{variant}}/seed{seed}/ensemble.pt"),
        histories=per_seed("results/{{dataset}}/{{method}}/noise_{{variant}}/seed{seed}/training_history.csv"),
        features="results/{dataset}/{method}/noise_{variant}/features.json",
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
        models=per_seed("results/{{dataset}}/{{method}}/noise_{{variant}}/seed{seed}/ensemble.pt"),
        data="results/{dataset}/data/test.zarr",
        stores=lambda wc: folders(PLAN.noise.stores(wc.dataset, wc.method, "test", wc.variant)),
    output:
        predictions=[temp(directory(p)) for p in per_seed("results/{{dataset}}/{{method}}/noise_{{variant}}/seed{seed}/predictions.zarr")],
        masks=[temp(directory(p)) for p in per_seed("results/{{dataset}}/{{method}}/noise_{{variant}}/seed{seed}/masks")],
    params:
        stores=lambda wc: PLAN.noise.stores(wc.dataset, wc.method, "test", wc.variant),
        runs_own_stores=False,
    log:
        "logs/predict_noise/{dataset}_{method}_{variant}.log",
    benchmark:
        "benchmarks/runs/predict_noise/{dataset}_{method}_{variant}.tsv"


use rule evaluate as evaluate_noise with:
    input:
        predictions=per_seed("results/{{dataset}}/{{method}}/noise_{{variant}}/seed{seed}/predictions.zarr"),
        data="results/{dataset}/data/test.zarr",
    output:
        metrics=per_seed("results/{{dataset}}/{{method}}/noise_{{variant}}/seed{seed}/metrics.json"),
        per_class=per_seed("results/{{dataset}}/{{method}}/noise_{{variant}}/seed{seed}/per_class_iou.csv"),
    log:
        "logs/evaluate_noise/{dataset}_{method}_{variant}.log",


rule table5:
    input:
        metrics=PLAN.noise.metrics(),
    output:
        table=report("results/table5.csv", caption="../report/table5.rst", category="Experiments"),
        long="results/table5_long.csv",
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
