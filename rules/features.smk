# Stage 3: pixel features into Zarr stores, one store per (layer, timestep) of the method's
# source at the layer's native resolution. One job writes one folder of stores,
# layout.feature_dir(dataset, model, split, extraction), running every timestep of an image
# batch in one forward pass and stopping the model after the deepest requested layer. The
# folder's name says what it is for (`ddpmseg.plan.Extraction`): Table 2's cells (cells, or
# cells_noise<n> under per-run noise), the probe sweep's other layers at one timestep
# (sweep_t<t>), Table 5's noise variants (noise_*) and the budget curve's diffusion snapshots
# (budget_step<n>). Rules that read stores take these folders as input and the stores' paths
# as a param.


rule extract_features:
    input:
        unpack(get_extraction_inputs),
    output:
        directory(layout.feature_dir("{dataset}", "{model}", "{split}", "{extraction}")),
    params:
        dataset=lambda wc: wc.dataset,
        plan=lambda wc: PLAN.plan_of(wc.dataset, wc.model).as_dict(),
        extraction=lambda wc: PLAN.stores.settings(wc.dataset),
        job=lambda wc: vars(PLAN.stores.extraction(wc.dataset, wc.model, wc.split, wc.extraction)),
        torch_threads=lambda wc: dataset_settings(wc)["features"]["threads"],
    log:
        "logs/extract_features/{dataset}_{model}_{split}_{extraction}.log",
    benchmark:
        "benchmarks/runs/extract_features/{dataset}_{model}_{split}_{extraction}.tsv"
    threads: lambda wc: dataset_settings(wc)["features"]["threads"]
    resources:
        gpu=lambda wc: int(PLAN.source_of(wc.dataset, wc.model).RUNS_A_MODEL),
        mem_mb=8000,
    conda:
        CONDA_ENV
    script:
        workflow_script("extract_features.py")
