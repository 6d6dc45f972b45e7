# Which unlabeled images (or regions) to label next (a dataset's `label_next`): the pool scored by
# one seed's ensemble of a method and ranked by a strategy (ddpmseg.label_next,
# ddpmseg.label_regions), and the picked images as a batch for an annotation tool: the originals,
# the predicted masks as pre-annotations in the dataset's format, an overlay each. Copying a corrected batch into the training folder reruns
# the labelled split and what follows it; the pool, and the diffusion model, stay.


rule label_next:
    input:
        unpack(get_label_next_inputs),
    output:
        ranking=report(layout.experiment("{dataset}", "label_next/ranking.csv"), caption="report/label_next.rst",
                       category="{dataset}", subcategory="label next", labels={"table": "ranking of the pool"}),
        batch=directory(layout.experiment("{dataset}", "label_next/batch")),
    params:
        unit="image",
        stores=lambda wc: PLAN.label_next.stores(wc.dataset),
        settings=lambda wc: PLAN.label_next.settings(wc.dataset),
        vote=lambda wc: dataset_settings(wc)["evaluation"]["vote"],
        gpu=ensemble_gpu,
        precision=lambda wc: dataset_settings(wc)["ensemble"]["precision"],
        torch_threads=lambda wc: dataset_settings(wc)["threads"],
    log:
        "logs/label_next/{dataset}.log",
    benchmark:
        "benchmarks/runs/label_next/{dataset}.tsv"
    threads: lambda wc: dataset_settings(wc)["threads"]
    resources:
        mem_mb=4000,
        gpu=ensemble_gpu,
    conda:
        CONDA_ENV
    script:
        workflow_script("label_next.py")


# A region batch (`label_next: {unit: region}`): the pool's regions ranked, in a folder of its own.
use rule label_next as label_next_regions with:
    params:
        unit="region",
        stores=lambda wc: PLAN.label_next.stores(wc.dataset),
        settings=lambda wc: PLAN.label_next.settings(wc.dataset),
        vote=lambda wc: dataset_settings(wc)["evaluation"]["vote"],
        gpu=ensemble_gpu,
        precision=lambda wc: dataset_settings(wc)["ensemble"]["precision"],
        torch_threads=lambda wc: dataset_settings(wc)["threads"],
    output:
        ranking=report(layout.experiment("{dataset}", "label_next/regions/ranking.csv"), caption="report/label_next.rst",
                       category="{dataset}", subcategory="label next", labels={"table": "ranking of the pool's regions"}),
        batch=directory(layout.experiment("{dataset}", "label_next/regions/batch")),
    log:
        "logs/label_next/{dataset}_regions.log",
    benchmark:
        "benchmarks/runs/label_next/{dataset}_regions.tsv"
