# Stage 2: the diffusion model, trained on the unlabeled images (paper Sec. 3.2) unless a
# guided-diffusion checkpoint is given in config.


rule train_diffusion:
    input:
        "results/{dataset}/data/unlabeled.zarr",
    output:
        checkpoint="results/{dataset}/diffusion/model.pt",
        flags="results/{dataset}/diffusion/flags.json",
        loss_csv="results/{dataset}/diffusion/loss.csv",
        loss_png="results/{dataset}/diffusion/loss.png",
    params:
        flags=lambda wc: ds(wc)["diffusion"]["flags"],
        train=lambda wc: ds(wc)["diffusion"]["train"],
    log:
        "logs/train_diffusion/{dataset}.log",
    benchmark:
        "benchmarks/runs/train_diffusion/{dataset}.tsv"
    threads: workflow.cores  # the long job gets the whole machine (torch caps at the CPUs it sees)
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=lambda wc: int(ds(wc)["diffusion"]["train"]["max_minutes"]) + 30,
    conda:
        "../envs/ddpmseg.yaml"
    script:
        "../workflow_scripts/train_diffusion.py"
