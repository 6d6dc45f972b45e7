# Stage 2: the diffusion model, trained on the unlabeled images (paper Sec. 3.2) unless a
# guided-diffusion checkpoint is given in config; one per model seed (`diffusion.seeds`): the
# first in results/{dataset}/diffusion/, seed d of the others in results/{dataset}/diffusion_m<d>/.
# The budget curve (rules/experiments/budget.smk) trains one more per dataset, keeping its EMA
# weights at each of `experiments.budget_steps`; the plan lists both (`Plan.diffusion_trainings`).


for _training in PLAN.diffusion_trainings():

    rule:
        name:
            _training["name"]
        input:
            "results/{dataset}/data/unlabeled.zarr",
        output:
            checkpoint=f"{_training['folder']}/model.pt",
            flags=f"{_training['folder']}/flags.json",
            loss_csv=f"{_training['folder']}/loss.csv",
            loss_png=report(f"{_training['folder']}/loss.png", caption="report/loss.rst", category="{dataset}",
                            subcategory="diffusion training", labels={"model": _training["label"]}),
            outcome=f"{_training['folder']}/training.json",
            snapshots=[f"{_training['folder']}/step{n}.pt" for n in _training["steps"]],
        params:
            flags=lambda wc: dataset_settings(wc)["diffusion"]["flags"],
            train=lambda wc, _steps=_training["steps"]: PLAN.diffusion_train(wc.dataset, _steps),
            seed=lambda wc: PLAN.model_seed(wc.dataset, wc.get("diffusion_dir", "diffusion")),
            snapshot_steps=_training["steps"],
            torch_threads=lambda wc: dataset_settings(wc)["diffusion"]["train"]["threads"],
        log:
            f"logs/{_training['log']}.log",
        benchmark:
            f"benchmarks/runs/{_training['log']}.tsv"
        wildcard_constraints:
            **_training["constraints"],
        threads: lambda wc: dataset_settings(wc)["diffusion"]["train"]["threads"]
        resources:
            gpu=1,
            mem_mb=8000,
            runtime=lambda wc: int(dataset_settings(wc)["diffusion"]["train"]["max_minutes"] or 24 * 60) + 30,
        conda:
            CONDA_ENV
        script:
            workflow_script("train_diffusion.py")
