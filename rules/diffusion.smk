# Stage 2: the diffusion model, trained on the unlabeled images (paper Sec. 3.2) unless a
# guided-diffusion checkpoint is given in config; one per model seed (`diffusion.seeds`): the
# first in the dataset's folder diffusion/, seed d of the others in diffusion_m<d>/
# (layout.diffusion_dir).
# The budget curve (rules/experiments/budget.smk) trains one more per dataset, to the last of
# `experiments.budget_steps`, keeping its EMA weights at each of them in snapshots/step<n>.pt.


rule train_diffusion:
    input:
        layout.split("{dataset}", "unlabeled"),
    output:
        checkpoint=layout.diffusion("{dataset}", "{diffusion_dir}", "model.pt"),
        flags=layout.diffusion("{dataset}", "{diffusion_dir}", "flags.json"),
        loss_csv=layout.diffusion("{dataset}", "{diffusion_dir}", "loss.csv"),
        loss_png=report(layout.diffusion("{dataset}", "{diffusion_dir}", "loss.png"), caption="report/loss.rst",
                        category="{dataset}", subcategory="diffusion training", labels={"model": "{diffusion_dir}"}),
        outcome=layout.diffusion("{dataset}", "{diffusion_dir}", "training.json"),
    params:
        flags=lambda wc: dataset_settings(wc)["diffusion"]["flags"],
        train=lambda wc: PLAN.diffusion_train(wc.dataset),
        seed=lambda wc: PLAN.model_seed(wc.dataset, wc.diffusion_dir),
        snapshot_steps=[],
        torch_threads=lambda wc: dataset_settings(wc)["diffusion"]["train"]["threads"],
    log:
        "logs/train_diffusion/{dataset}_{diffusion_dir}.log",
    benchmark:
        "benchmarks/runs/train_diffusion/{dataset}_{diffusion_dir}.tsv"
    threads: lambda wc: dataset_settings(wc)["diffusion"]["train"]["threads"]
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=lambda wc: int(dataset_settings(wc)["diffusion"]["train"]["max_minutes"] or 24 * 60) + 30,
    conda:
        CONDA_ENV
    script:
        workflow_script("train_diffusion.py")


use rule train_diffusion as train_diffusion_budget with:
    output:
        checkpoint=layout.diffusion("{dataset}", layout.BUDGET_DIFFUSION, "model.pt"),
        flags=layout.diffusion("{dataset}", layout.BUDGET_DIFFUSION, "flags.json"),
        loss_csv=layout.diffusion("{dataset}", layout.BUDGET_DIFFUSION, "loss.csv"),
        loss_png=report(layout.diffusion("{dataset}", layout.BUDGET_DIFFUSION, "loss.png"), caption="report/loss.rst",
                        category="{dataset}", subcategory="diffusion training", labels={"model": "budget curve"}),
        outcome=layout.diffusion("{dataset}", layout.BUDGET_DIFFUSION, "training.json"),
        snapshots=directory(layout.diffusion("{dataset}", layout.BUDGET_DIFFUSION, "snapshots")),
    params:
        train=lambda wc: PLAN.diffusion_train(wc.dataset, budget=True),
        seed=lambda wc: PLAN.model_seeds(wc.dataset)[0],
        snapshot_steps=lambda wc: PLAN.budget.steps(wc.dataset),
    log:
        "logs/train_diffusion_budget/{dataset}.log",
    benchmark:
        "benchmarks/runs/train_diffusion_budget/{dataset}.tsv"
