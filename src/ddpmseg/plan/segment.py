"""The plan of a dataset's `segment:` folders: which bundle segments each."""

from ddpmseg.digests import folder_digest
from ddpmseg.methods import ConfigProblem
from ddpmseg.plan import layout
from ddpmseg.plan.settle import chosen_seed


# segment.<name>.model -> the run folder of the bundle that segments the folder ({pool}: the
# dataset's first distill pool, None where it has none)
BUNDLE_FOLDERS = {"ensemble": "{method}", "deeplab": "distill_{pool}"}


class Segment:
    """Every dataset's `segment` folders with defaults filled in, checked when built."""

    def __init__(self, plan):
        self.plan = plan
        self.folders = {d: self._folders(d) for d in plan.datasets}

    def _folders(self, dataset: str) -> dict:
        """{name: {path, model, method, seed, format}} of a dataset's `segment` folders, defaults
        filled in (a bare folder: the first method's ensemble of the first seed)."""
        plan, folders = self.plan, {}
        keys = [k for m in plan.plans[dataset] for k in plan.method_keys(dataset, m)]
        for name, given in plan.settings(dataset)["segment"].items():
            spec = {"path": given} if isinstance(given, str) else dict(given)
            where = f"config: datasets.{dataset}.segment.{name}"
            spec = {"model": "ensemble", "format": "palette", **spec, "method": spec.get("method") or plan.methods[0]}
            if spec["method"] not in keys:
                raise ConfigProblem(f"{where}.method is {spec['method']!r}, not a method of this dataset; give one of "
                                    f"{', '.join(keys)}")
            spec["seed"] = chosen_seed(spec.get("seed"), plan.seeds, f"{where}.seed")
            if "{pool}" in BUNDLE_FOLDERS[spec["model"]] and not plan.distill.pools(dataset):
                raise ConfigProblem(f"{where} asks for model {spec['model']}, but datasets.{dataset}.distill.pools is "
                                    "empty; list ddpm or unlabeled there")
            folders[name] = spec
        return folders

    def targets(self) -> list:
        return [layout.segment(d, name) for d in self.plan.datasets for name in self.folders[d]]

    def bundle(self, dataset: str, name: str) -> str:
        """The bundle that segments folder `name`: the chosen ensemble's, or the first pool's DeepLab."""
        spec, pools = self.folders[dataset][name], self.plan.distill.pools(dataset)
        folder = BUNDLE_FOLDERS[spec["model"]].format(method=spec["method"], pool=pools[0] if pools else None)
        return layout.run(dataset, folder, spec["seed"], "segmenter")

    def manifest(self, dataset: str, name: str) -> str:
        """Fingerprint of a `segment` folder's files (a param: a changed file reruns its preparation)."""
        return folder_digest(self.folders[dataset][name]["path"])
