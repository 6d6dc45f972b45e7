"""Fetches one configured download (resumable, checksummed, renamed into place when complete)."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
from ddpmseg.download import download
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
digest = download(snakemake.params.url, snakemake.output[0], snakemake.params.sha256)  # a DownloadError is a UserError
log.info("%s: sha256 %s", snakemake.output[0], digest)
