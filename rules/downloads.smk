# Stage 0: files fetched from the network (the paper's data archive and checkpoints), as
# configured under `downloads:`: each lands at resources/downloads/<file>, and an archive with
# `unpack: true` is extracted to resources/<entry name>/. A dry run plans them without a network.


rule download:
    output:
        "resources/downloads/{file}",
    params:
        url=lambda wc: PLAN.files.download_of(wc.file)["url"],
        sha256=lambda wc: PLAN.files.download_of(wc.file)["sha256"],
    log:
        "logs/download/{file}.log",
    benchmark:
        "benchmarks/runs/download/{file}.tsv"
    wildcard_constraints:
        file=one_of(PLAN.files.download_files()),
    threads: 1
    resources:
        mem_mb=500,
        runtime=120,
    conda:
        CONDA_ENV
    script:
        workflow_script("download.py")


rule unpack:
    input:
        lambda wc: PLAN.files.download_path(wc.name),
    output:
        directory("resources/{name}"),
    log:
        "logs/unpack/{name}.log",
    wildcard_constraints:
        name=one_of(PLAN.files.unpacked_downloads()),
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        CONDA_ENV
    script:
        workflow_script("unpack.py")
