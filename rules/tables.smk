# Stage 6: mIoU over seeds as the paper's Table 2 (methods x datasets), plus the long format.
# The overview pictures and reliability diagrams are inputs so that the main target leaves them for the
# user too.


rule table2:
    input:
        metrics=[layout.run(d, key, s, "metrics.json") for d, key, s in RUNS + PLAN.distill.runs],
        overviews=expand(layout.experiment("{dataset}", "overview.png"), dataset=DATASETS),
        reliability=expand(layout.experiment("{dataset}", "reliability.png"), dataset=DATASETS),
        features=[layout.run_file(d, m, "features.json") for d in DATASETS for m in PLAN.probes.described_methods(d)],
        training=[path for _, path in PLAN.training_outcomes()],
        distill=[layout.run(d, key, s, "training.json") for d, key, s in PLAN.distill.runs],
        cell_weights=PLAN.probes.cell_weight_figures(),
        resplits=[layout.table("table2_resplits.csv")] if PLAN.resplits.runs() else [],
    output:
        table=report(layout.table("table2.csv"), caption="report/table2.rst", category="Table 2"),
        long=layout.table("table2_long.csv"),
        spread=report(layout.table("table2_spread.csv"), caption="report/spread.rst", category="Table 2"),
    params:
        runs=[(d, key, PLAN.run_model_seed(d, key), s) for d, key, s in RUNS]
        + [list(run[:2]) + [None, run[2]] for run in PLAN.distill.runs],
        names=PLAN.names() | PLAN.distill.row_names(),
        trained_adm=bool(PLAN.stage_trained_methods(DATASETS[0])),
        described=[(d, m) for d in DATASETS for m in PLAN.probes.described_methods(d)],  # in the order of input.features
        training_datasets=[d for d, _ in PLAN.training_outcomes()],
        distill_runs=PLAN.distill.runs,
    log:
        "logs/table2.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        CONDA_ENV
    script:
        workflow_script("table2.py")
