"""`ddpmseg label-studio push` and `pull`: a `label_next` batch into a Label Studio project, each
image opened with the ensemble's masks to correct, and the finished annotations back into the
dataset (through label-studio-sdk, the server's own client).

push: the project (found by title, created with the dataset's classes and colours where
missing: `formats.label_studio_tasks.label_config`) gets each batch image not in it yet, one
at a time: uploaded as a file (the server names it /data/upload/<project>/<8 hex>-<name>),
then imported as a task; then each task without the batch's prediction gets it
(`formats.label_studio_tasks.image_prediction`). An image is in the project when a task's data
names it (`ddpmseg_image`), so pushing a batch twice adds nothing, and a push cut short is
completed by the next.

pull: the project's JSON export; each task of ours (`ddpmseg_image`) with an annotation that
was not cancelled (the latest) is drawn (`formats.label_studio.annotation_map`) at its image's
size, its labels mapped to the dataset's classes by name, and written into the dataset
(`formats.dataset_labels`; a Label Studio dataset takes the finished tasks as one more export,
`ddpmseg-<project>.json`); tasks of no annotation or not ours are counted and left. A region
batch's task (`ddpmseg_asked`) writes only its asked pixels: the rest of the image keeps its
earlier labels, or the ignore label where it had none.

Token: `LABEL_STUDIO_API_KEY` (Account & Settings), either kind: a personal access token (a JWT
refresh token, exchanged for access tokens by the sdk) or a legacy token. URL: `--url`, else
`LABEL_STUDIO_URL`, else http://localhost:8080.
"""

from __future__ import annotations

import os
import pathlib
import re

import numpy as np

from ddpmseg.errors import UserError
from ddpmseg.formats.label_studio import annotation_map, chosen_annotation, config_classes
from ddpmseg.formats.dataset_labels import DatasetLabels
from ddpmseg.formats.label_studio_tasks import (batch_images, config_tags, image_prediction, label_config,
                                                model_version, read_asked, read_manifest, row_key, task_data,
                                                task_key)
from ddpmseg.formats.source import IGNORED
from ddpmseg.images import shown_size

DEFAULT_URL = "http://localhost:8080"
TOKEN_VARIABLE = "LABEL_STUDIO_API_KEY"


class Server:
    """A Label Studio server reached with a token; every failure to reach or use it is a
    UserError in one line."""

    def __init__(self, url: str | None, token: str | None = None):
        from label_studio_sdk import LabelStudio

        self.url = (url or os.environ.get("LABEL_STUDIO_URL") or DEFAULT_URL).rstrip("/")
        token = token or os.environ.get(TOKEN_VARIABLE)
        if not token:
            raise UserError(f"no Label Studio token: set {TOKEN_VARIABLE} to your access token (Label Studio: "
                            "Account & Settings > Personal Access Token)")
        self.client = LabelStudio(base_url=self.url, api_key=token, timeout=120)
        self.call(self.client.users.whoami)

    def call(self, function, /, *args, **kwargs):
        """``function(*args, **kwargs)``, a failure to reach the server or be let in as a UserError."""
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        try:
            return function(*args, **kwargs)
        except httpx.TransportError as exc:
            raise UserError(f"{self.url}: Label Studio cannot be reached ({exc.__class__.__name__}: {exc}); start it "
                            "(label-studio start) or fix --url") from exc
        except ApiError as exc:
            if exc.status_code in (401, 403):
                raise UserError(f"{self.url}: the token in {TOKEN_VARIABLE} is refused ({exc.status_code}); copy a "
                                "personal access token from Account & Settings (a legacy token works only where the "
                                "organisation enables them)") from exc
            raise UserError(f"{self.url}: Label Studio answered {exc.status_code}: {exc.body}") from exc

    def project(self, title: str):
        """The project titled ``title``, or None."""
        found = [p for p in self.call(lambda: list(self.client.projects.list(title=title))) if p.title == title]
        return self.call(self.client.projects.get, found[0].id) if found else None

    def tasks(self, project_id: int) -> dict:
        """{`task_key` (image id, asked regions): {id, predictions: [dict]}} of a project's tasks."""
        listed = self.call(lambda: list(self.client.tasks.list(project=project_id, fields="all")))
        return {task_key(task.data): {"id": task.id, "predictions": [p.model_dump() for p in task.predictions or []]}
                for task in listed}

    def upload(self, project_id: int, image: pathlib.Path) -> str:
        """Uploads an image file to a project (no task made); returns its URL on the server."""
        def send():
            with open(image, "rb") as f:
                answer = self.client._client_wrapper.httpx_client.request(  # the sdk's own HTTP client:
                    f"api/projects/{project_id}/import", method="POST",       # it uploads no files itself
                    params={"commit_to_project": "false"}, files={image.name: f})
            if answer.status_code >= 400:
                from label_studio_sdk.core.api_error import ApiError

                raise ApiError(status_code=answer.status_code, body=answer.text)
            [upload] = answer.json()["file_upload_ids"]
            return self.client.files.get(upload).file

        return "/data/" + self.call(send)


def checked_classes(project, classes: list) -> list:
    """The project's classes (its labelling config's), UserError naming the differences where
    they are not ``classes`` (the dataset's; labels are matched by name, in any order)."""
    theirs = config_classes(project.label_config, f"Label Studio project {project.title!r}")
    missing, extra = [c for c in classes if c not in theirs], [c for c in theirs if c not in classes]
    if missing or extra:
        raise UserError(f"Label Studio project {project.title!r} labels {theirs}, the dataset's classes are {classes}"
                        f"{'; missing: ' + ', '.join(missing) if missing else ''}"
                        f"{'; not in the dataset: ' + ', '.join(extra) if extra else ''}. Push into a new project "
                        "(--project) or make the project's labels the dataset's classes")
    return theirs


def push(server: Server, batch, title: str) -> dict:
    """Puts a label_next batch (results/<dataset>/label_next/batch, or its parent) into the
    project ``title`` (created where missing). Returns {project, added, present}: the project's
    id and the image ids added and already there."""
    batch = pathlib.Path(batch)
    batch = batch / "batch" if (batch / "batch").is_dir() else batch
    manifest = read_manifest(batch)
    project = server.project(title)
    if project is None:
        config = label_config(manifest["classes"], manifest["colours"])
        project = server.call(server.client.projects.create, title=title, label_config=config,
                              description=f"ddpmseg label_next: {manifest['dataset']}, ranked by {manifest['method']} "
                                          f"seed {manifest['seed']} ({manifest['strategy']})")
    checked_classes(project, manifest["classes"])
    tags = config_tags(project.label_config, f"Label Studio project {title!r}")
    present = set(server.tasks(project.id))
    added, rows = [], batch_images(batch)
    for row, image, mask in rows:  # one at a time: a push cut short leaves whole tasks, the next adds the rest
        if row_key(row) not in present:
            data = task_data(row, server.upload(project.id, image), tags, mask)
            server.call(server.client.projects.import_tasks, id=project.id, request=[{"data": data}])
            added.append(row["image"])
    # The predictions one by one onto the tasks found by their data: Label Studio 1.23 on SQLite
    # numbers an import's tasks itself, and under concurrent imports attaches imported predictions
    # to another import's tasks.
    version, tasks = model_version(manifest), server.tasks(project.id)
    for row, _, mask in rows:
        task = tasks[row_key(row)]
        if not any(p.get("model_version") == version for p in task["predictions"]):
            server.call(server.client.predictions.create, task=task["id"], **image_prediction(manifest, row, mask, tags))
    return {"project": project.id, "added": added,
            "present": [row["image"] for row, _, _ in rows if row_key(row) in present]}


def pull(server: Server, title: str, labels: DatasetLabels) -> dict:
    """Writes the finished annotations of the project ``title`` into the dataset (``labels``):
    all are drawn and checked first, so that a bad one leaves the dataset as it was. A region
    task's annotation is written only at its asked pixels, over the image's earlier labels (or
    the ignore label). Returns {written, unchanged, skipped: {why: count}, added: whether any
    went to the `added_labels` folder} (image ids)."""
    project = server.project(title)
    if project is None:
        raise UserError(f"{server.url}: no Label Studio project titled {title!r}; push a batch into it first")
    checked_classes(project, labels.classes)
    done = {"written": [], "unchanged": [], "skipped": {"not from ddpmseg": 0, "not annotated": 0}, "added": False}
    whole, finished = [], []  # (image id, name, class map) of whole tasks and the tasks, all checked first
    regions = {}  # image id -> (name, labels): its region tasks over its earlier labels, in task order
    for task in server.call(server.client.projects.exports.as_json, project.id):
        image_id = (task.get("data") or {}).get("ddpmseg_image")
        annotation = chosen_annotation(task, "latest")
        if image_id is None or annotation is None:
            done["skipped"]["not from ddpmseg" if image_id is None else "not annotated"] += 1
            continue
        where = f"Label Studio project {title!r}: task {task['id']} ({image_id})"
        if image_id not in labels.images:
            raise UserError(f"{where}: {labels.root} has no pool image {image_id!r}; pull into the dataset whose "
                            "pool the batch was ranked from")
        image = labels.images[image_id]
        width, height, _ = shown_size(image)
        class_map = annotation_map(annotation, width, height, labels.classes, where, image.name).astype(np.int16)
        name = task["data"].get("ddpmseg_name") or image_id
        if "ddpmseg_asked" not in task["data"]:
            whole.append((image_id, name, class_map))
            finished.append({**task, "annotations": [annotation]})
            continue
        asked = read_asked(task["data"]["ddpmseg_asked"])
        if asked.shape != class_map.shape:
            raise UserError(f"{where}: its asked regions are {asked.shape[1]}x{asked.shape[0]} pixels, the image "
                            f"{width}x{height}; push the batch again from the dataset it was ranked from")
        if image_id not in regions:
            earlier = labels.current(image_id, name)
            regions[image_id] = (name, np.full(class_map.shape, IGNORED, np.int16) if earlier is None
                                 else earlier.astype(np.int16))
        regions[image_id] = (name, np.where(asked, class_map, regions[image_id][1]))
    if labels.exports is not None:  # a Label Studio dataset: the whole tasks as one more export
        changed = labels.write_export(f"ddpmseg-{re.sub(r'[^A-Za-z0-9_.-]+', '-', title)}", finished)
        done["written" if changed else "unchanged"] += [image_id for image_id, _, _ in whole]
        whole = []
    for image_id, name, class_map in whole + [(image_id, *named) for image_id, named in regions.items()]:
        done["written" if labels.write(image_id, name, class_map) else "unchanged"].append(image_id)
        done["added"] = done["added"] or labels.added is not None
    return done
