# Stage 0: files fetched from the network (the paper's data archive and checkpoints), as
# configured under `downloads:`. One rule per entry, so a dry run plans them without a network.


for _name, _download in config["downloads"].items():

    rule:
        name:
            f"download_{_name}"
        output:
            PLAN.download_path(_name),
        params:
            url=_download["url"],
            sha256=_download["sha256"],
        log:
            f"logs/download/{_name}.log",
        benchmark:
            f"benchmarks/runs/download/{_name}.tsv"
        threads: 1
        resources:
            mem_mb=500,
            runtime=120,
        conda:
            CONDA_ENV
        script:
            workflow_script("download.py")

    if _download["unpack"]:
        if not PLAN.download_path(_name).endswith((".tar.gz", ".tgz", ".tar", ".zip")):
            config_error(f"config: download {_name!r} has unpack: true but {PLAN.download_path(_name)} is not a "
                         ".tar.gz, .tgz, .tar or .zip archive")

        rule:
            name:
                f"unpack_{_name}"
            input:
                PLAN.download_path(_name),
            output:
                directory(f"resources/{_name}"),
            log:
                f"logs/unpack/{_name}.log",
            threads: 1
            resources:
                mem_mb=1000,
            conda:
                CONDA_ENV
            script:
                workflow_script("unpack.py")
