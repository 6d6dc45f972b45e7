# Stage 2b: the feature sources the workflow pretrains on the dataset's unlabeled images when no
# checkpoint is given (the paper pretrains its MAE and SwAV baselines on the same images as the
# DDPM): one job per (dataset, method), a budget of train.max_steps, as the diffusion model's.


rule pretrain:
    input:
        layout.split("{dataset}", "unlabeled"),
    output:
        checkpoint=layout.pretrained("{dataset}", "{method}", "model.pt"),
        loss_csv=layout.pretrained("{dataset}", "{method}", "loss.csv"),
        loss_png=report(layout.pretrained("{dataset}", "{method}", "loss.png"), caption="report/pretrain_loss.rst",
                        category="{dataset}", subcategory="pretraining", labels={"method": "{method}"}),
        outcome=layout.pretrained("{dataset}", "{method}", "training.json"),
    params:
        plan=lambda wc: PLAN.plans[wc.dataset][wc.method].as_dict(),
        torch_threads=lambda wc: PLAN.plans[wc.dataset][wc.method].settings["train"]["threads"],
    log:
        "logs/pretrain/{dataset}_{method}.log",
    benchmark:
        "benchmarks/runs/pretrain/{dataset}_{method}.tsv"
    threads: lambda wc: PLAN.plans[wc.dataset][wc.method].settings["train"]["threads"]
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=lambda wc: int(PLAN.plans[wc.dataset][wc.method].settings["train"]["max_minutes"] or 24 * 60) + 30,
    conda:
        CONDA_ENV
    script:
        workflow_script("pretrain.py")
