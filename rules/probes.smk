# The probe sweep (paper Figures 2-4): which decoder blocks and diffusion steps carry the
# semantics. One extraction job per (dataset, model, split, timestep) computes, in one forward
# pass per image batch, every sweep block at that step that the ensemble's extraction does not
# already write; one probe job per (block, timestep) cell reads only that cell's stores.
# Target `figures` draws fig2-4 of every dataset; features `auto` reads the sweep's table.


for _dataset in DATASETS:
    if "problem" in SWEEPS[_dataset]:
        continue
    for _t in SWEEPS[_dataset]["timesteps"]:
        _blocks = [b for b in SWEEPS[_dataset]["blocks"] if (b, _t) not in fixed_cells(_dataset)]
        if not _blocks:
            continue

        rule:
            name:
                f"extract_sweep_{_dataset}_t{_t}"
            input:
                unpack(extraction_inputs(_dataset)),
            output:
                [directory(store_path(_dataset, "{model}", "{split}", b, _t)) for b in _blocks],  # the first run's noise
            params:
                dataset=_dataset,
                flags=config["datasets"][_dataset]["diffusion"]["flags"],
                extraction=extraction_settings(_dataset),
                blocks=_blocks,
                timesteps=[_t],
                model_seed=model_seed_param(_dataset),
                noise_seed=config["datasets"][_dataset]["features"]["noise_seed"] if not per_run_noise(_dataset) else SEEDS[0],
                torch_threads=config["datasets"][_dataset]["features"]["threads"],
            log:
                f"logs/extract_sweep/{_dataset}_t{_t}_{{model}}_{{split}}.log",
            benchmark:
                f"benchmarks/runs/extract_sweep/{_dataset}_t{_t}_{{model}}_{{split}}.tsv"
            threads: config["datasets"][_dataset]["features"]["threads"]
            resources:
                gpu=1,
                mem_mb=8000,
            conda:
                "../envs/ddpmseg.yaml"
            script:
                "../workflow_scripts/extract_features.py"


rule probe:
    input:
        train_store=lambda wc: store_path(wc.dataset, "ddpm", "train", wc.block, wc.timestep),
        test_store=lambda wc: store_path(wc.dataset, "ddpm", "test", wc.block, wc.timestep),
        train="results/{dataset}/data/train.zarr",
        test="results/{dataset}/data/test.zarr",
    output:
        "results/{dataset}/probes/cells/b{block}_t{timestep}.json",
    params:
        probes=lambda wc: ds(wc)["probes"],
        ensemble=lambda wc: ds(wc)["ensemble"],
        evaluation=lambda wc: ds(wc)["evaluation"],
        torch_threads=lambda wc: ds(wc)["threads"],
    log:
        "logs/probe/{dataset}_b{block}_t{timestep}.log",
    benchmark:
        "benchmarks/runs/probe/{dataset}_b{block}_t{timestep}.tsv"
    threads: lambda wc: ds(wc)["threads"]
    resources:
        mem_mb=ensemble_mem_mb,
        gpu=ensemble_gpu,
    conda:
        "../envs/ddpmseg.yaml"
    script:
        "../workflow_scripts/probe.py"


checkpoint probe_table:
    input:
        cells=lambda wc: [
            f"results/{wc.dataset}/probes/cells/b{b}_t{t}.json"
            for b in sweep(wc)["blocks"]
            for t in sweep(wc)["timesteps"]
        ],
        train="results/{dataset}/data/train.zarr",
    output:
        csv="results/{dataset}/probes/miou_by_block_timestep.csv",
        split="results/{dataset}/probes/class_split.json",
    params:
        small_fraction=lambda wc: ds(wc)["probes"]["small_fraction"],
    log:
        "logs/probe_table/{dataset}.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../envs/ddpmseg.yaml"
    script:
        "../workflow_scripts/probe_table.py"


rule probe_figures:
    input:
        csv="results/{dataset}/probes/miou_by_block_timestep.csv",
        split="results/{dataset}/probes/class_split.json",
        test="results/{dataset}/data/test.zarr",
    output:
        fig2=report("results/{dataset}/figures/fig2.png", caption="report/fig2.rst", category="{dataset}",
                    subcategory="probe sweep", labels={"figure": "2: mIoU by block and step"}),
        fig3=report("results/{dataset}/figures/fig3.png", caption="report/fig3.rst", category="{dataset}",
                    subcategory="probe sweep", labels={"figure": "3: small vs large classes"}),
    params:
        marked=lambda wc: fixed_cells(wc.dataset),
        settings=lambda wc: ds(wc)["probes"],
    log:
        "logs/probe_figures/{dataset}.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../envs/ddpmseg.yaml"
    script:
        "../workflow_scripts/probe_figures.py"


rule kmeans_figure:
    input:
        stores=lambda wc: [store_path(wc.dataset, "ddpm", "test", b, t) for b, t in sweep(wc)["kmeans"]],
        test="results/{dataset}/data/test.zarr",
    output:
        report("results/{dataset}/figures/fig4.png", caption="report/fig4.rst", category="{dataset}",
               subcategory="probe sweep", labels={"figure": "4: k-means of the features"}),
    params:
        cells=lambda wc: sweep(wc)["kmeans"],
        kmeans=lambda wc: ds(wc)["probes"]["kmeans"],
        seed=lambda wc: ds(wc)["probes"]["seed"],
    log:
        "logs/kmeans_figure/{dataset}.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../envs/ddpmseg.yaml"
    script:
        "../workflow_scripts/kmeans_figure.py"


rule figures:
    input:
        expand(
            "results/{dataset}/{name}",
            dataset=DATASETS,
            name=["figures/fig2.png", "figures/fig3.png", "figures/fig4.png", "probes/miou_by_block_timestep.csv"],
        ),
