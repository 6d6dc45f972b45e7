"""envs/ddpmseg.yaml is the pinned lock of pyproject.toml's [project] dependencies: one list to
maintain (pyproject), one lock that follows it. Fast: reads two files (and, for the last test,
the installed packages' metadata)."""

import importlib.metadata
import pathlib
import re
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parent.parent


def project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def dependencies() -> list:
    return [Requirement(d) for d in project()["dependencies"]]


def lock() -> dict:
    return yaml.safe_load((ROOT / "envs" / "ddpmseg.yaml").read_text(encoding="utf-8"))


def lock_pip_entries() -> list:
    """The strings of the lock's `pip:` list."""
    entries = [e for e in lock()["dependencies"] if isinstance(e, dict) and "pip" in e]
    assert len(entries) == 1, "envs/ddpmseg.yaml: expected one `pip:` list under dependencies"
    return [str(e) for e in entries[0]["pip"]]


def lock_pins() -> dict:
    """{canonical name: [pinned version, ...]} of the lock's `name==version` entries."""
    pins = {}
    for entry in lock_pip_entries():
        match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;,=<>!~]+)\s*", entry)
        if match:
            pins.setdefault(canonicalize_name(match[1]), []).append(match[2])
    return pins


def test_every_lock_entry_is_pinned_with_double_equals():
    loose = [e for e in lock_pip_entries()
             if not re.fullmatch(r"\s*[A-Za-z0-9][A-Za-z0-9._-]*\s*==\s*[^\s;,=<>!~*]+\s*", e)]
    assert not loose, f"envs/ddpmseg.yaml: entries not pinned as name==version: {loose}"
    conda = [e for e in lock()["dependencies"] if isinstance(e, str) and e != "pip"]
    assert all("=" in e for e in conda), f"envs/ddpmseg.yaml: conda entries without a version: {conda}"


def test_every_pyproject_dependency_has_one_pin_its_specifier_allows():
    pins = lock_pins()
    problems = []
    for requirement in dependencies():
        found = pins.get(canonicalize_name(requirement.name), [])
        if len(found) != 1:
            problems.append(f"{requirement.name}: {len(found)} pins in the lock ({found}), expected exactly one")
        elif not requirement.specifier.contains(Version(found[0]), prereleases=True):
            problems.append(f"{requirement.name}: the lock pins {found[0]}, pyproject asks for "
                            f"{requirement.specifier}")
    assert not problems, "envs/ddpmseg.yaml does not follow pyproject.toml:\n" + "\n".join(problems)


def test_the_locked_python_satisfies_requires_python():
    pythons = [e for e in lock()["dependencies"] if isinstance(e, str) and re.match(r"python\s*=", e)]
    assert len(pythons) == 1, f"envs/ddpmseg.yaml: expected one python=X.Y entry, found {pythons}"
    version = pythons[0].split("=", 1)[1].strip().lstrip("=")
    assert SpecifierSet(project()["requires-python"]).contains(Version(version))


def needed_by(requirements: list) -> set:
    """Canonical names of `requirements` and of everything they need, by the installed metadata."""
    needed, todo = set(), list(requirements)
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in needed:
            continue
        needed.add(name)
        try:
            requires = importlib.metadata.requires(requirement.name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            sub = Requirement(text)
            extras = [""] + sorted(requirement.extras)
            if sub.marker is None or any(sub.marker.evaluate({"extra": extra}) for extra in extras):
                todo.append(sub)
    return needed


def test_every_other_lock_entry_is_needed_by_a_pyproject_dependency():
    """A pin beyond pyproject's list must be a package one of its dependencies needs (e.g.
    transformers' tokenizers), so that a dependency dropped from pyproject leaves the lock too."""
    requirements = dependencies()
    missing = []
    for requirement in requirements:
        try:
            importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement.name)
    if missing:
        pytest.skip(f"not installed here, so what they need is unknown: {missing}")
    direct = {canonicalize_name(r.name) for r in requirements}
    needed = needed_by(requirements)
    stray = sorted(name for name in lock_pins() if name not in direct and name not in needed)
    assert not stray, (f"envs/ddpmseg.yaml pins {stray}, which neither pyproject.toml lists nor any of its "
                       "dependencies needs: remove them from the lock")
