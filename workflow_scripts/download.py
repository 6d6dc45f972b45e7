"""Fetches one configured download (resumable, checksummed, renamed into place when complete)."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import sys

from ddpmseg.download import DownloadError, download
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
try:
    digest = download(snakemake.params.url, snakemake.output[0], snakemake.params.sha256)
except DownloadError as error:  # the message says what to do; a traceback would bury it
    log.error("%s", error)
    sys.exit(1)
log.info("%s: sha256 %s", snakemake.output[0], digest)
