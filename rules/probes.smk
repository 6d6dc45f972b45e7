# The probe sweep (paper Figures 2-4), for any method: which layers (and, for a diffusion
# source, which timesteps) carry the semantics. For ADM, one extraction job per (dataset, model,
# split, timestep) computes, in one forward pass per image batch, every sweep block at that step
# that the ensemble's extraction does not already write; another source's sweep layers come from
# one extraction job. One probe job per cell reads only that cell's stores. Target `figures`
# draws fig2-4 of the `probes.methods` of every dataset; a method's `auto` reads its sweep's table.


for _dataset in DATASETS:
    for _method, _plan in PLANS[_dataset].items():
        _grid = SWEEPS[_dataset][_method]
        if "problem" in _grid:
            continue
        for _t in _grid["timesteps"]:
            _layers = [layer for layer in _grid["layers"] if (layer, _t) not in fixed_cells(_dataset, _method)]
            if not _layers:
                continue

            rule:
                name:
                    f"extract_sweep_{_dataset}_{_method}" + ("" if _t is None else f"_t{_t}")
                input:
                    unpack(extraction_inputs(_dataset, _method)),
                output:
                    [directory(store_path(_dataset, "{model}", "{split}", layer, _t, method=_method)) for layer in _layers],  # the first run's noise
                params:
                    dataset=_dataset,
                    plan=_plan,
                    extraction=extraction_settings(_dataset),
                    layers=_layers,
                    timesteps=None if _t is None else [_t],
                    model_seed=model_seed_param(_dataset),
                    noise_seed=config["datasets"][_dataset]["features"]["noise_seed"] if not per_run_noise(_dataset, _method) else SEEDS[0],
                    torch_threads=config["datasets"][_dataset]["features"]["threads"],
                log:
                    f"logs/extract_sweep/{_dataset}_{cell_id('all', _t)}_{{model}}_{{split}}.log",
                benchmark:
                    f"benchmarks/runs/extract_sweep/{_dataset}_{cell_id('all', _t)}_{{model}}_{{split}}.tsv"
                wildcard_constraints:
                    model=_method,
                threads: config["datasets"][_dataset]["features"]["threads"]
                resources:
                    gpu=1,
                    mem_mb=8000,
                conda:
                    CONDA_ENV
                script:
                    workflow_script("extract_features.py")


rule probe:
    input:
        unpack(probe_stores),
        train="results/{dataset}/data/train.zarr",
        test="results/{dataset}/data/test.zarr",
    output:
        "results/{dataset}/probes/{method}/cells/{cell}.json",
    params:
        cell=sweep_cell,
        probes=lambda wc: ds(wc)["probes"],
        ensemble=lambda wc: ds(wc)["ensemble"],
        evaluation=lambda wc: ds(wc)["evaluation"],
        torch_threads=lambda wc: ds(wc)["threads"],
    log:
        "logs/probe/{dataset}_{method}_{cell}.log",
    benchmark:
        "benchmarks/runs/probe/{dataset}_{method}_{cell}.tsv"
    threads: lambda wc: ds(wc)["threads"]
    resources:
        mem_mb=ensemble_mem_mb,
        gpu=ensemble_gpu,
    conda:
        CONDA_ENV
    script:
        workflow_script("probe.py")


checkpoint probe_table:
    input:
        cells=lambda wc: [f"results/{wc.dataset}/probes/{wc.method}/cells/{cell_id(layer, t)}.json"
                          for layer in sweep(wc)["layers"] for t in sweep(wc)["timesteps"]],
        train="results/{dataset}/data/train.zarr",
    output:
        csv="results/{dataset}/probes/{method}/miou_by_layer_timestep.csv",
        split="results/{dataset}/probes/{method}/class_split.json",
    params:
        small_fraction=lambda wc: ds(wc)["probes"]["small_fraction"],
    log:
        "logs/probe_table/{dataset}_{method}.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        workflow_script("probe_table.py")


rule probe_figures:
    input:
        csv="results/{dataset}/probes/{method}/miou_by_layer_timestep.csv",
        split="results/{dataset}/probes/{method}/class_split.json",
        test="results/{dataset}/data/test.zarr",
    output:
        fig2=report("results/{dataset}/figures/{method}/fig2.png", caption="report/fig2.rst", category="{dataset}",
                    subcategory="probe sweep", labels={"method": "{method}", "figure": "2: mIoU by layer and step"}),
        fig3=report("results/{dataset}/figures/{method}/fig3.png", caption="report/fig3.rst", category="{dataset}",
                    subcategory="probe sweep", labels={"method": "{method}", "figure": "3: small vs large classes"}),
    params:
        marked=lambda wc: fixed_cells(wc.dataset, wc.method),
        settings=lambda wc: ds(wc)["probes"],
        name=lambda wc: PLANS[wc.dataset][wc.method]["name"],
        source=lambda wc: PLANS[wc.dataset][wc.method]["source"],
    log:
        "logs/probe_figures/{dataset}_{method}.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        workflow_script("probe_figures.py")


rule kmeans_figure:
    input:
        stores=lambda wc: [store_path(wc.dataset, wc.method, "test", layer, t) for layer, t in sweep(wc)["kmeans"]],
        test="results/{dataset}/data/test.zarr",
    output:
        report("results/{dataset}/figures/{method}/fig4.png", caption="report/fig4.rst", category="{dataset}",
               subcategory="probe sweep", labels={"method": "{method}", "figure": "4: k-means of the features"}),
    params:
        cells=lambda wc: sweep(wc)["kmeans"],
        kmeans=lambda wc: ds(wc)["probes"]["kmeans"],
        seed=lambda wc: ds(wc)["probes"]["seed"],
        name=lambda wc: PLANS[wc.dataset][wc.method]["name"],
    log:
        "logs/kmeans_figure/{dataset}_{method}.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        workflow_script("kmeans_figure.py")


rule figures:
    input:
        [f"results/{d}/{name}" for d in DATASETS for m in probe_methods(d) for name in (
            f"figures/{m}/fig2.png", f"figures/{m}/fig3.png", f"figures/{m}/fig4.png",
            f"probes/{m}/miou_by_layer_timestep.csv")],
