# Stage 6: mIoU over seeds as the paper's Table 2 (methods x datasets), plus the long format.
# The overview pictures are inputs so that the main target leaves them for the user too.


rule table2:
    input:
        metrics=expand(
            "results/{dataset}/{method}/seed{seed}/metrics.json",
            dataset=DATASETS,
            method=METHODS,
            seed=SEEDS,
        ),
        overviews=expand("results/{dataset}/overview.png", dataset=DATASETS),
        features=expand("results/{dataset}/ddpm/features.json", dataset=DATASETS if "ddpm" in METHODS else []),
    output:
        table="results/table2.csv",
        long="results/table2_long.csv",
    params:
        runs=[(d, m, s) for d in DATASETS for m in METHODS for s in SEEDS],
    log:
        "logs/table2.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../envs/ddpmseg.yaml"
    script:
        "../workflow_scripts/table2.py"
