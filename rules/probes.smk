# The probe sweep (paper Figures 2-4), for any method: which layers (and, for a diffusion
# source, which timesteps) carry the semantics. For ADM, one extraction job per (dataset, model,
# split, timestep) computes, in one forward pass per image batch, every sweep block at that step
# that the ensemble's extraction does not already write; another source's sweep layers come from
# one extraction job. One probe job per cell reads only that cell's stores. Target `figures`
# draws fig2-4 of the `probes.methods` of every dataset; a method's `auto` reads its sweep's table.


rule probe:
    input:
        unpack(get_probe_stores),
        train=layout.split("{dataset}", "train"),
        test=layout.split("{dataset}", "test"),
    output:
        layout.probes("{dataset}", "{method}", "cells/{cell}.json"),
    params:
        stores=lambda wc: PLAN.probes.cell_stores(wc.dataset, wc.method, wc.cell),
        cell=lambda wc: PLAN.probes.cell(wc.dataset, wc.method, wc.cell),
        probes=lambda wc: dataset_settings(wc)["probes"],
        ensemble=lambda wc: dataset_settings(wc)["ensemble"],
        evaluation=lambda wc: dataset_settings(wc)["evaluation"],
        torch_threads=lambda wc: dataset_settings(wc)["threads"],
    log:
        "logs/probe/{dataset}_{method}_{cell}.log",
    benchmark:
        "benchmarks/runs/probe/{dataset}_{method}_{cell}.tsv"
    threads: lambda wc: dataset_settings(wc)["threads"]
    resources:
        mem_mb=ensemble_mem_mb,
        gpu=ensemble_gpu,
    conda:
        CONDA_ENV
    script:
        workflow_script("probe.py")


checkpoint probe_table:
    input:
        cells=lambda wc: [layout.probes(wc.dataset, wc.method, f"cells/{cell}.json") for cell in PLAN.probes.cells(wc.dataset, wc.method)],
        train=layout.split("{dataset}", "train"),
    output:
        csv=layout.probes("{dataset}", "{method}", "miou_by_layer_timestep.csv"),
        split=layout.probes("{dataset}", "{method}", "class_split.json"),
    params:
        small_fraction=lambda wc: dataset_settings(wc)["probes"]["small_fraction"],
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
        csv=layout.probes("{dataset}", "{method}", "miou_by_layer_timestep.csv"),
        split=layout.probes("{dataset}", "{method}", "class_split.json"),
        test=layout.split("{dataset}", "test"),
    output:
        fig2=report(layout.figure("{dataset}", "{method}", "fig2.png"), caption="report/fig2.rst", category="{dataset}",
                    subcategory="probe sweep", labels={"method": "{method}", "figure": "2: mIoU by layer and step"}),
        fig3=report(layout.figure("{dataset}", "{method}", "fig3.png"), caption="report/fig3.rst", category="{dataset}",
                    subcategory="probe sweep", labels={"method": "{method}", "figure": "3: small vs large classes"}),
    params:
        marked=lambda wc: PLAN.fixed_cells(wc.dataset, wc.method),
        settings=lambda wc: dataset_settings(wc)["probes"],
        name=lambda wc: PLAN.plans[wc.dataset][wc.method].name,
        axes=lambda wc: PLAN.source_of(wc.dataset, wc.method).FIGURE_AXES,
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
        stores=lambda wc: folders(PLAN.probes.kmeans_stores(wc.dataset, wc.method)),
        test=layout.split("{dataset}", "test"),
    output:
        report(layout.figure("{dataset}", "{method}", "fig4.png"), caption="report/fig4.rst", category="{dataset}",
               subcategory="probe sweep", labels={"method": "{method}", "figure": "4: k-means of the features"}),
    params:
        stores=lambda wc: PLAN.probes.kmeans_stores(wc.dataset, wc.method),
        cells=lambda wc: PLAN.probes.sweep(wc.dataset, wc.method)["kmeans"],
        kmeans=lambda wc: dataset_settings(wc)["probes"]["kmeans"],
        seed=lambda wc: dataset_settings(wc)["probes"]["seed"],
        name=lambda wc: PLAN.plans[wc.dataset][wc.method].name,
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
        [path for d in DATASETS for m in PLAN.probes.methods(d) for path in (
            layout.figure(d, m, "fig2.png"), layout.figure(d, m, "fig3.png"), layout.figure(d, m, "fig4.png"),
            layout.probes(d, m, "miou_by_layer_timestep.csv"))],
