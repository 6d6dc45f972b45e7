# Stage 4: the pixel classifier ensemble, one job per (dataset, method, seed), fed by streaming
# the training stores.


rule train_ensemble:
    input:
        data="results/{dataset}/data/train.zarr",
        stores=lambda wc: feature_stores(wc.dataset, wc.method, "train"),
    output:
        model="results/{dataset}/{method}/seed{seed}/ensemble.pt",
        history="results/{dataset}/{method}/seed{seed}/training_history.csv",
    params:
        settings=lambda wc: ds(wc)["ensemble"],
    log:
        "logs/train_ensemble/{dataset}_{method}_seed{seed}.log",
    benchmark:
        "benchmarks/runs/train_ensemble/{dataset}_{method}_seed{seed}.tsv"
    threads: lambda wc: ds(wc)["threads"]
    resources:
        mem_mb=4000,
    conda:
        "../envs/ddpmseg.yaml"
    script:
        "../workflow_scripts/train_ensemble.py"
