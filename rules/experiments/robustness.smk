# Figure 6 of the paper: robustness to corruptions. The configured corruptions of the
# `imagecorruptions` package that work with the installed libraries (a checkpoint tries each)
# are applied to the test split at every severity, each a prepared split of its own
# (layout.corrupted_test, one job per corruption writing every severity). One job per (method
# folder, corruption) extracts their features with the clean run's recipe into a temporary
# folder and scores Table 2's clean ensembles on them; nothing is retrained.


checkpoint corruption_check:
    input:
        data=layout.split("{dataset}", "test"),
    output:
        layout.data("{dataset}", "corruptions.json"),
    params:
        corruptions=lambda wc: dataset_settings(wc)["experiments"]["corruptions"],
        severities=lambda wc: PLAN.robustness.severities(wc.dataset),
    log:
        "logs/corruption_check/{dataset}.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        CONDA_ENV
    script:
        workflow_script("check_corruptions.py")


rule corrupt_test:
    input:
        data=layout.split("{dataset}", "test"),
    output:
        directory(layout.corrupted_test("{dataset}", "{corruption}")),
    params:
        severities=lambda wc: PLAN.robustness.severities(wc.dataset),
    log:
        "logs/corrupt_test/{dataset}_{corruption}.log",
    benchmark:
        "benchmarks/runs/corrupt_test/{dataset}_{corruption}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        workflow_script("corrupt_test.py")


rule robustness_scores:
    input:
        unpack(get_robustness_inputs),
    output:
        layout.run_file("{dataset}", "{method}", "robustness/{corruption}.csv"),
    params:
        data=lambda wc: PLAN.robustness.corrupted_tests(wc.dataset, wc.corruption),
        dataset=lambda wc: wc.dataset,
        plan=lambda wc: PLAN.plan_of(wc.dataset, wc.method).as_dict(),
        extraction=lambda wc: PLAN.stores.settings(wc.dataset),
        model_seed=lambda wc: PLAN.model_seed(wc.dataset, wc.method),
        seeds=SEEDS,
        runs_own_stores=lambda wc: PLAN.per_run_noise(wc.dataset, wc.method),
        noise_seeds=lambda wc: SEEDS if PLAN.per_run_noise(wc.dataset, wc.method) else [dataset_settings(wc)["features"]["noise_seed"]],
        severities=lambda wc: PLAN.robustness.severities(wc.dataset),
        evaluation=lambda wc: dataset_settings(wc)["evaluation"],
        precision=lambda wc: dataset_settings(wc)["ensemble"]["precision"],
        torch_threads=lambda wc: dataset_settings(wc)["features"]["threads"],
    log:
        "logs/robustness_scores/{dataset}_{method}_{corruption}.log",
    benchmark:
        "benchmarks/runs/robustness_scores/{dataset}_{method}_{corruption}.tsv"
    threads: lambda wc: dataset_settings(wc)["features"]["threads"]
    resources:
        mem_mb=lambda wc: ensemble_mem_mb(wc) + 4000,
        gpu=lambda wc: int(PLAN.source_of(wc.dataset, wc.method).RUNS_A_MODEL) or ensemble_gpu(wc),
    conda:
        CONDA_ENV
    script:
        workflow_script("robustness.py")


rule robustness:
    input:
        corrupted=get_robustness_scores,
        clean=lambda wc: [layout.run(wc.dataset, key, s, "metrics.json") for key, s in PLAN.experiment_runs(wc.dataset)],
    output:
        report(layout.experiment("{dataset}", "robustness.csv"), caption="../report/robustness.rst",
               category="{dataset}", subcategory="experiments", labels={"result": "robustness to corruptions"}),
    params:
        runs=lambda wc: PLAN.experiment_runs(wc.dataset),
        names=lambda wc: {key: PLAN.plan_of(wc.dataset, key).name for key, _ in PLAN.experiment_runs(wc.dataset)},
    log:
        "logs/robustness/{dataset}.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        CONDA_ENV
    script:
        workflow_script("robustness_table.py")


rule figure6:
    input:
        expand(layout.experiment("{dataset}", "robustness.csv"), dataset=DATASETS),
    output:
        figure=report(layout.table("figure6.png"), caption="../report/figure6.rst", category="Experiments"),
        table=layout.table("figure6.csv"),
    log:
        "logs/figure6.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        CONDA_ENV
    script:
        workflow_script("figure6.py")
