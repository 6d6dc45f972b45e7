# ddpmseg: label-efficient semantic segmentation with diffusion models (Baranchuk et al., 2022).
# Main target: Table 2 (layout.table("table2.csv")). Stages live in rules/<stage>.smk; every
# path comes from the results layout, ddpmseg.plan.layout.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "rules/report/workflow.rst"


include: "rules/common.smk"
include: "rules/downloads.smk"
include: "rules/datasets.smk"
include: "rules/diffusion.smk"
include: "rules/pretrain.smk"
include: "rules/features.smk"
include: "rules/ensemble.smk"
include: "rules/evaluate.smk"
include: "rules/tables.smk"
include: "rules/probes.smk"
include: "rules/experiments/per_class.smk"
include: "rules/experiments/labels.smk"
include: "rules/experiments/robustness.smk"
include: "rules/experiments/noise.smk"
include: "rules/experiments/budget.smk"
include: "rules/experiments/active_labelling.smk"
include: "rules/experiments/resplits.smk"
include: "rules/segment.smk"
include: "rules/label_next.smk"
include: "rules/distill.smk"
include: "rules/experiments/annotated.smk"  # reuses the segment and distill rules


rule all:
    input:
        layout.table("table2.csv"),
        expand(layout.experiment("{dataset}", "overview.png"), dataset=DATASETS),
        PLAN.label_next.targets(),


rule experiments:
    input:
        [layout.table("table4.csv")] if PLAN.labels.datasets() else [],
        [layout.table("table3.csv")] if PLAN.distill.table3_datasets else [],
        expand(layout.experiment("{dataset}", "per_class_iou.csv"), dataset=DATASETS),
        layout.table("figure6.png"),
        layout.table("table5.csv"),
        expand(layout.experiment("{dataset}", "budget_curve.png"), dataset=PLAN.budget.datasets()),
        expand(layout.experiment("{dataset}", "active_labelling.png"), dataset=PLAN.active_labelling.datasets()),


rule segment:
    input:
        PLAN.segment.targets(),
