# Per-class IoU (the paper's Appendix D): every class's IoU on the test split, mean ± std over
# the runs of every method of Table 2 (read from their per_class_iou.csv, nothing retrained).


rule per_class_iou:
    input:
        per_class=lambda wc: [layout.run(d, key, s, "per_class_iou.csv") for d, key, s in RUNS if d == wc.dataset],
    output:
        table=report(layout.experiment("{dataset}", "per_class_iou.csv"), caption="../report/per_class_table.rst",
                     category="{dataset}", subcategory="experiments", labels={"result": "per-class IoU table"}),
        long=layout.experiment("{dataset}", "per_class_iou_long.csv"),
        figure=report(layout.experiment("{dataset}", "per_class_iou.png"), caption="../report/per_class_table.rst",
                      category="{dataset}", subcategory="experiments", labels={"result": "per-class IoU figure"}),
    params:
        runs=lambda wc: [(key, s) for d, key, s in RUNS if d == wc.dataset],
        names=lambda wc: {key: PLAN.plan_of(wc.dataset, key).name for d, key, s in RUNS if d == wc.dataset},
    log:
        "logs/per_class_iou/{dataset}.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        CONDA_ENV
    script:
        workflow_script("per_class_table.py")
