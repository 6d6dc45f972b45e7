# Does ranking pay? The labelling loop simulated on the training split
# (`experiments.active_labelling`; ddpmseg.experiments.active_labelling): one job per (unit,
# strategy, seed) that retrains the method's ensemble each round on Table 2's stores, whole
# images or regions revealed, then the curves, their summary and the figure per dataset.


rule active_labelling_run:
    input:
        unpack(get_active_labelling_inputs),
    output:
        layout.experiment("{dataset}", "active_labelling/image/{strategy}/seed{seed}.csv"),
    params:
        unit="image",
        stores=lambda wc: PLAN.active_labelling.stores(wc.dataset, int(wc.seed)),
        settings=lambda wc: PLAN.active_labelling.settings(wc.dataset),
        ensemble=lambda wc: dataset_settings(wc)["ensemble"],
        evaluation=lambda wc: dataset_settings(wc)["evaluation"],
        torch_threads=lambda wc: dataset_settings(wc)["threads"],
    log:
        "logs/active_labelling_run/{dataset}_image_{strategy}_{seed}.log",
    benchmark:
        "benchmarks/runs/active_labelling_run/{dataset}_image_{strategy}_{seed}.tsv"
    wildcard_constraints:
        strategy=r"uncertainty|diversity|uncertainty\+diversity|random",
    threads: lambda wc: dataset_settings(wc)["threads"]
    resources:
        mem_mb=ensemble_mem_mb,
        gpu=ensemble_gpu,
    conda:
        CONDA_ENV
    script:
        workflow_script("active_labelling_run.py")


use rule active_labelling_run as active_labelling_region_run with:
    input:
        unpack(get_active_labelling_inputs),
        regions=lambda wc: layout.regions(wc.dataset, "train"),
    output:
        layout.experiment("{dataset}", "active_labelling/region/{strategy}/seed{seed}.csv"),
    params:
        unit="region",
        stores=lambda wc: PLAN.active_labelling.stores(wc.dataset, int(wc.seed)),
        settings=lambda wc: PLAN.active_labelling.settings(wc.dataset),
        ensemble=lambda wc: dataset_settings(wc)["ensemble"],
        evaluation=lambda wc: dataset_settings(wc)["evaluation"],
        torch_threads=lambda wc: dataset_settings(wc)["threads"],
    log:
        "logs/active_labelling_run/{dataset}_region_{strategy}_{seed}.log",
    benchmark:
        "benchmarks/runs/active_labelling_run/{dataset}_region_{strategy}_{seed}.tsv"
    wildcard_constraints:
        strategy="uncertainty|balanced|random",


rule active_labelling:
    input:
        runs=lambda wc: PLAN.active_labelling.curves(wc.dataset),
    output:
        long=layout.experiment("{dataset}", "active_labelling.csv"),
        summary=report(layout.experiment("{dataset}", "active_labelling_summary.csv"),
                       caption="../report/active_labelling.rst", category="Experiments", subcategory="{dataset}",
                       labels={"table": "active labelling"}),
        figure=report(layout.experiment("{dataset}", "active_labelling.png"), caption="../report/active_labelling.rst",
                      category="Experiments", subcategory="{dataset}", labels={"figure": "active labelling"}),
    params:
        runs=lambda wc: PLAN.active_labelling.runs(wc.dataset),
        method=lambda wc: PLAN.names()[PLAN.active_labelling.settings(wc.dataset)["method"]],
    log:
        "logs/active_labelling/{dataset}.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        CONDA_ENV
    script:
        workflow_script("active_labelling.py")
