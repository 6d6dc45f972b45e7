# Stage 3: pixel features into Zarr stores, one store per (layer, timestep) of the method's
# source at the layer's native resolution. One job per (dataset, method folder, split) runs
# every timestep of an image batch in one forward pass and stops the model after the deepest
# requested layer. The one rule below serves every kind of extraction that `ddpmseg.plan`
# lists (`Plan.extractions`): a method's cells for Table 2, the probe sweep's other layers per
# timestep, Table 5's noise variants and the budget curve's diffusion snapshots. A job's stores
# are its outputs, and their number differs between methods, so the plan names one rule per
# (dataset, method, kind); its body is written once, here.


for _job in PLAN.extractions():

    rule:
        name:
            _job.name
        input:
            unpack(get_extraction_inputs(_job)),
        output:
            [directory(path) for path in _job.outputs],
        params:
            dataset=_job.dataset,
            plan=PLAN.plans[_job.dataset][_job.method],
            extraction=PLAN.extraction_settings(_job.dataset),
            layers=_job.layers,
            timesteps=_job.timesteps,
            model_seed=lambda wc, _job=_job: PLAN.extraction_model_seed(_job, dict(wc.items())),
            noise_mode=lambda wc, _job=_job: PLAN.extraction_noise(_job, dict(wc.items()))[0],
            noise_seed=lambda wc, _job=_job: PLAN.extraction_noise(_job, dict(wc.items()))[1],
            torch_threads=PLAN.settings(_job.dataset)["features"]["threads"],
        log:
            f"logs/{_job.log}.log",
        benchmark:
            f"benchmarks/runs/{_job.log}.tsv"
        wildcard_constraints:
            **_job.constraints,
        threads: PLAN.settings(_job.dataset)["features"]["threads"]
        resources:
            gpu=int(PLAN.source_of(_job.dataset, _job.method).RUNS_A_MODEL),
            mem_mb=8000,
        conda:
            CONDA_ENV
        script:
            workflow_script("extract_features.py")
