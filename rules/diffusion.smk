# Stage 2: the diffusion model, trained on the unlabeled images (paper Sec. 3.2) unless a
# guided-diffusion checkpoint is given in config; one per model seed (`diffusion.seeds`): the
# first in results/{dataset}/diffusion/, seed d of the others in results/{dataset}/diffusion_m<d>/.


rule train_diffusion:
    input:
        "results/{dataset}/data/unlabeled.zarr",
    output:
        checkpoint="results/{dataset}/{diffusion_dir}/model.pt",
        flags="results/{dataset}/{diffusion_dir}/flags.json",
        loss_csv="results/{dataset}/{diffusion_dir}/loss.csv",
        loss_png=report("results/{dataset}/{diffusion_dir}/loss.png", caption="report/loss.rst", category="{dataset}",
                        subcategory="diffusion training", labels={"model": "{diffusion_dir}"}),
        outcome="results/{dataset}/{diffusion_dir}/training.json",
    params:
        flags=lambda wc: ds(wc)["diffusion"]["flags"],
        train=lambda wc: {k: v for k, v in ds(wc)["diffusion"]["train"].items() if k != "threads"},
        seed=lambda wc: model_seed(wc.dataset, wc.diffusion_dir),
        torch_threads=lambda wc: ds(wc)["diffusion"]["train"]["threads"],
    log:
        "logs/train_diffusion/{dataset}_{diffusion_dir}.log",
    benchmark:
        "benchmarks/runs/train_diffusion/{dataset}_{diffusion_dir}.tsv"
    threads: lambda wc: ds(wc)["diffusion"]["train"]["threads"]
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=lambda wc: int(ds(wc)["diffusion"]["train"]["max_minutes"] or 24 * 60) + 30,
    conda:
        CONDA_ENV
    script:
        workflow_script("train_diffusion.py")
