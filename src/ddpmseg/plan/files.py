"""The files a plan reads: the configured downloads and the datasets' folders."""

import urllib.parse
from pathlib import Path, PurePosixPath

from ddpmseg.digests import folder_digest, manifest_digest
from ddpmseg.formats.paper import PAPER
from ddpmseg.methods import ConfigProblem

ARCHIVES = (".tar.gz", ".tgz", ".tar", ".zip")


class Files:
    """Where downloads land and which folder holds a dataset; checks the downloads when built."""

    def __init__(self, config: dict):
        self.config = config
        for name in self.unpacked_downloads():
            if not self.download_path(name).endswith(ARCHIVES):
                raise ConfigProblem(f"config: download {name!r} has unpack: true but {self.download_path(name)} is not a "
                                    ".tar.gz, .tgz, .tar or .zip archive")
        files = self.download_files()
        if len(set(files)) < len(files):
            raise ConfigProblem(f"config: downloads: two entries land at resources/downloads/"
                                f"{next(f for f in files if files.count(f) > 1)}; give one of them another `file`")

    def download_path(self, name: str) -> str:
        """Where download `name` lands: resources/downloads/<its `file`, or the file name of its URL>."""
        download = self.config["downloads"][name]
        return f"resources/downloads/{download['file'] or PurePosixPath(urllib.parse.urlparse(download['url']).path).name}"

    def download_of(self, file: str) -> dict:
        """The `downloads` entry that lands at resources/downloads/<file>."""
        return next(d for name, d in self.config["downloads"].items() if self.download_path(name).endswith(f"/{file}"))

    def download_files(self) -> list:
        """The file names under resources/downloads/ of every configured download."""
        return [PurePosixPath(self.download_path(name)).name for name in self.config["downloads"]]

    def unpacked_downloads(self) -> list:
        """The downloads extracted to resources/<name>/ (`unpack: true`)."""
        return [name for name, download in self.config["downloads"].items() if download["unpack"]]

    def dataset_root(self, dataset: str) -> str:
        """The folder holding a dataset's meta.json / real/: its path, or the generated one."""
        return self.config["datasets"][dataset]["path"] or f"resources/{dataset}/source"

    def written_folder(self, dataset: str, path: str) -> str | None:
        """The folder the workflow writes that holds `path`: the generated embedded dataset
        (resources/<dataset>/source) or an unpacked download (resources/<name>/); None for a user's file."""
        generated = f"resources/{dataset}/source"
        if self.config["datasets"][dataset]["path"] is None and PurePosixPath(path).is_relative_to(generated):
            return generated
        for name, download in self.config["downloads"].items():
            if download["unpack"] and PurePosixPath(path).is_relative_to(f"resources/{name}"):
                return f"resources/{name}"
        return None

    def source(self, dataset: str) -> str:
        """The dataset folder a preparation reads: the user's path, the generated embedded dataset,
        or, for a path inside an unpacked download (resources/<name>/...), that download's folder."""
        root = self.dataset_root(dataset)
        return self.written_folder(dataset, root) or root

    def annotated_source(self, dataset: str, name: str) -> str:
        """An annotated set's folder, or the folder the workflow writes that holds it."""
        folder = self.annotated_folder(dataset, name)
        return self.written_folder(dataset, folder) or folder

    def manifest(self, dataset: str, part: str = "labelled") -> str:
        """Fingerprint of the files of a user's dataset folder (names, sizes, mtimes) that one of
        its preparations reads: a param, so that a file added, removed or rewritten reruns it and
        all after it. part "labelled": the train and test images (the paper's layout: real/),
        "pool": the unlabeled images (unlabeled/); an annotation format's folder is read whole by
        both (its images without annotation are the pool), its `added_labels` folder by the first. "" for folders the workflow writes
        itself (generated, unpacked), which Snakemake tracks."""
        settings = self.config["datasets"][dataset]
        path = settings["path"]
        if path is None or self.source(dataset) != path:
            return ""
        if settings["format"] == PAPER:
            return manifest_digest(path, ("real",) if part == "labelled" else ("unlabeled",))
        folder = Path(path) if Path(path).is_dir() else Path(path).parent  # a COCO JSON: the folder around it
        extra = folder / settings["unlabeled"] if settings["unlabeled"] else None  # an absolute one stays
        added = folder / settings["added_labels"] if settings["added_labels"] and part == "labelled" else None
        return "".join(folder_digest(f) for f in (folder, extra, added) if f)

    def annotated_manifest(self, dataset: str, name: str) -> str:
        """Fingerprint of a user's annotated folder ("" for one the workflow writes)."""
        folder = self.annotated_folder(dataset, name)
        return folder_digest(folder) if self.annotated_source(dataset, name) == folder else ""

    def annotated_folder(self, dataset: str, name: str) -> str:
        """The folder of a dataset's annotated set `name`: below the dataset's path, or absolute."""
        folder = PurePosixPath(self.config["datasets"][dataset]["annotated"][name])
        return str(folder if folder.is_absolute() else PurePosixPath(self.dataset_root(dataset)) / folder)
