# Stage 3: pixel features into Zarr stores, one store per (block, timestep) at the block's
# native resolution. One extraction job per (dataset, model, split) runs every timestep of an
# image in one batch and stops the UNet after the deepest requested block; its outputs are the
# dataset's configured stores, so the rule is written out once per dataset.


for _dataset in DATASETS:
    if is_auto(_dataset):  # its stores come from the probe sweep's extraction (rules/probes.smk)
        continue

    rule:
        name:
            f"extract_features_{_dataset}"
        input:
            unpack(extraction_inputs(_dataset)),
        output:
            [directory(store_path(_dataset, "{model}", "{split}", b, t, noise="{noise}")) for b, t in fixed_cells(_dataset)],
        params:
            dataset=_dataset,
            flags=config["datasets"][_dataset]["diffusion"]["flags"],
            extraction=extraction_settings(_dataset),
            blocks=sorted({b for b, _ in fixed_cells(_dataset)}),
            timesteps=sorted({t for _, t in fixed_cells(_dataset)}),
            model_seed=model_seed_param(_dataset),
            noise_seed=noise_seed_param(_dataset),
            torch_threads=config["datasets"][_dataset]["features"]["threads"],
        log:
            f"logs/extract_features/{_dataset}_{{model}}_{{split}}{'_noise{noise}' if per_run_noise(_dataset) else ''}.log",
        benchmark:
            f"benchmarks/runs/extract_features/{_dataset}_{{model}}_{{split}}{'_noise{noise}' if per_run_noise(_dataset) else ''}.tsv"
        threads: config["datasets"][_dataset]["features"]["threads"]
        resources:
            gpu=1,
            mem_mb=8000,
        conda:
            "../envs/ddpmseg.yaml"
        script:
            "../workflow_scripts/extract_features.py"


rule control_features:
    input:
        "results/{dataset}/data/{split}.zarr",
    output:
        directory("results/{dataset}/features/{control}/{split}/features_{control}.zarr"),
    log:
        "logs/control_features/{dataset}_{control}_{split}.log",
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../envs/ddpmseg.yaml"
    script:
        "../workflow_scripts/control_features.py"
