# Random re-splits of the labelled images (`evaluation.resplits`; ddpmseg.experiments.resplits):
# each split drawn once per dataset and written out, then one job per (dataset, method, split)
# that trains every seed's ensemble on Table 2's stores of both fixed splits read as one and
# scores it; Table 2 adds their mean ± std.


rule resplit_images:
    input:
        train=layout.split("{dataset}", "train"),
        test=layout.split("{dataset}", "test"),
    output:
        layout.experiment("{dataset}", "resplits/split{resplit}.json"),
    log:
        "logs/resplit_images/{dataset}_{resplit}.log",
    benchmark:
        "benchmarks/runs/resplit_images/{dataset}_{resplit}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        CONDA_ENV
    script:
        workflow_script("resplit_images.py")


rule resplit_ensemble:
    input:
        unpack(get_resplit_inputs),
    output:
        layout.run_file("{dataset}", "{method}", "resplit{resplit}/scores.csv"),
    params:
        stores=lambda wc: PLAN.resplits.stores(wc.dataset, wc.method),
        ensemble=lambda wc: dataset_settings(wc)["ensemble"],
        evaluation=lambda wc: dataset_settings(wc)["evaluation"],
        seeds=SEEDS,
        runs_own_stores=runs_own_stores,
        torch_threads=lambda wc: dataset_settings(wc)["threads"],
    log:
        "logs/resplit_ensemble/{dataset}_{method}_{resplit}.log",
    benchmark:
        "benchmarks/runs/resplit_ensemble/{dataset}_{method}_{resplit}.tsv"
    threads: lambda wc: dataset_settings(wc)["threads"]
    resources:
        mem_mb=ensemble_mem_mb,
        gpu=ensemble_gpu,
    conda:
        CONDA_ENV
    script:
        workflow_script("resplit_ensemble.py")


rule table2_resplits:
    input:
        scores=[layout.run_file(d, key, f"resplit{r}/scores.csv") for d, key, r in PLAN.resplits.runs()],
    output:
        layout.table("table2_resplits.csv"),
    params:
        runs=PLAN.resplits.runs(),
        names=PLAN.names(),
    log:
        "logs/table2_resplits.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        CONDA_ENV
    script:
        workflow_script("table2_resplits.py")
