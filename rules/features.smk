# Stage 3: pixel features into Zarr stores, one store per (layer, timestep) of the method's
# source at the layer's native resolution. One extraction job per (dataset, method folder,
# split) runs every timestep of an image batch in one forward pass and stops the model after the
# deepest requested layer; its outputs are the method's configured stores, so the rule is
# written out once per (dataset, method).


for _dataset in DATASETS:
    for _method, _plan in PLANS[_dataset].items():
        if _plan["layers"] == "auto":  # its stores come from the probe sweep's extraction (rules/probes.smk)
            continue
        _noise = "_noise{noise}" if per_run_noise(_dataset, _method) else ""

        rule:
            name:
                f"extract_features_{_dataset}_{_method}"
            input:
                unpack(extraction_inputs(_dataset, _method)),
            output:
                [directory(store_path(_dataset, "{model}", "{split}", layer, t, noise="{noise}", method=_method))
                 for layer, t in fixed_cells(_dataset, _method)],
            params:
                dataset=_dataset,
                plan=_plan,
                extraction=extraction_settings(_dataset),
                layers=_plan["layers"],
                timesteps=_plan["timesteps"],
                model_seed=model_seed_param(_dataset),
                noise_seed=noise_seed_param(_dataset, _method),
                torch_threads=config["datasets"][_dataset]["features"]["threads"],
            log:
                f"logs/extract_features/{_dataset}_{{model}}_{{split}}{_noise}.log",
            benchmark:
                f"benchmarks/runs/extract_features/{_dataset}_{{model}}_{{split}}{_noise}.tsv"
            wildcard_constraints:
                model=_method + (r"(_m\d+)?" if _plan["source"] == "adm" else ""),
            threads: config["datasets"][_dataset]["features"]["threads"]
            resources:
                gpu=int(backbones.source(_plan["source"]).RUNS_A_MODEL),
                mem_mb=8000,
            conda:
                CONDA_ENV
            script:
                workflow_script("extract_features.py")
