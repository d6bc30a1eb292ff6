"""Software deployment, checked statically: the conda environments of the rules (envs/*.yaml) and
the container definitions (containers/Dockerfile.*). Neither conda-forge nor a container engine
can be reached from the test machines, so nothing here builds an environment or an image; what
is checked is what a build would rely on.
"""

from __future__ import annotations

import ast
import re
import shlex
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from snakemake_runs import REPO, workflow_rules

ENVS = REPO / "envs"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# Import name -> the distributions (conda-forge or PyPI names) that provide it. A dotted name
# wins over its top-level package (`from dask.distributed import ...` needs distributed).
PROVIDERS = {
    "PIL": {"pillow"},
    "dask": {"dask", "dask-core"},
    "dask.distributed": {"distributed"},
    "distributed": {"distributed"},
    "torch": {"torch", "pytorch"},
    "cupy": {"cupy", "cupy-cuda13x"},
    "yaml": {"pyyaml"},
    "skimage": {"scikit-image"},
    "mapbox_earcut": {"mapbox_earcut", "mapbox-earcut"},
}
# conda-forge name -> the PyPI name pyproject.toml constrains.
# distributed comes in through dask[distributed] and is released with dask, version for version.
PYPI_NAME = {"dask-core": "dask", "distributed": "dask", "pytorch": "torch", "cupy": "cupy-cuda13x"}
# CuPy is reached only on the CUDA path (voxelize --backend cuda, or auto once CuPy imports);
# a rule on a CPU environment never takes it.
GPU_ONLY = {"cupy"}
GPU_ENV = ENVS / "gpu.yaml"
TOOLS = {"python", "pip"}


def env_packages(path: Path) -> dict[str, str]:
    """Package name (canonical) -> its version pin ('' if none), conda and pip entries alike."""
    env = yaml.safe_load(path.read_text())
    packages = {}
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            for spec in entry["pip"]:
                requirement = Requirement(spec)
                packages[canonicalize_name(requirement.name)] = str(requirement.specifier)
        else:
            name, _, version = entry.partition("=")
            packages[canonicalize_name(name)] = version
    return packages


def pyproject_requirements() -> dict[str, Requirement]:
    specs = list(PYPROJECT["project"]["dependencies"])
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        specs += extra
    return {canonicalize_name(r.name): r for r in map(Requirement, specs)}


ENV_FILES = sorted(ENVS.glob("*.yaml"))


def test_the_environment_files_are_the_three_groups():
    assert [p.stem for p in ENV_FILES] == ["data", "gpu", "report"]


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_an_environment_parses_and_pins_every_package(path):
    env = yaml.safe_load(path.read_text())
    assert env["channels"][0] == "conda-forge" and "defaults" not in env["channels"]
    packages = env_packages(path)
    python = Version(packages["python"] + ".0")
    assert python in Requirement(f"python{PYPROJECT['project']['requires-python']}").specifier
    for name, pin in packages.items():
        assert pin or name in TOOLS, f"{path.name}: {name} is not pinned"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_environment_pins_are_versions_pyproject_allows(path):
    """The envs pin a release series (numpy=2.4: 2.4.*) or a version (torch==2.13.0); each must
    lie in the range pyproject.toml installs and tests."""
    requirements = pyproject_requirements()
    for name, pin in env_packages(path).items():
        if name in TOOLS:
            continue
        pypi = canonicalize_name(PYPI_NAME.get(name, name))
        assert pypi in requirements, f"{path.name}: {name} is not a dependency in pyproject.toml"
        version = Version(re.sub(r"^[=<>!~]+|\.\*$", "", pin.split(",")[0]))
        allowed = requirements[pypi].specifier
        assert allowed.contains(version, prereleases=True), f"{path.name}: {name} {pin} outside {allowed}"


def test_the_gpu_environment_has_the_data_environment_at_the_same_versions():
    """voxelize runs in either, by backend: the same grids need the same libraries."""
    data, gpu = env_packages(ENVS / "data.yaml"), env_packages(GPU_ENV)
    assert {name: pin for name, pin in gpu.items() if name in data} == data


# --- every package a rule's stage imports is in the rule's environment ---------------------------


def stage_module(shellcmd: str) -> str | None:
    match = re.search(r"python -m (stages(?:\.\w+)+)", shellcmd)
    return match.group(1) if match else None


def module_file(module: str) -> Path:
    path = REPO / Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def guarded_by_import_error(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """An import inside `try: ... except ImportError` is optional by construction."""
    while node in parents:
        child, node = node, parents[node]
        if isinstance(node, ast.Try) and child in node.body:
            for handler in node.handlers:
                names = ast.unparse(handler.type) if handler.type else ""
                if "ImportError" in names or "ModuleNotFoundError" in names:
                    return True
    return False


def imported_names(path: Path, module: str = "") -> set[str]:
    """Absolute module names imported anywhere in a file (also inside functions), except optional
    imports; `from a import b` yields both a and a.b (b may be a submodule). Relative imports are
    resolved against `module` (the file's own dotted name)."""
    tree = ast.parse(path.read_text())
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and not guarded_by_import_error(node, parents):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not guarded_by_import_error(node, parents):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def third_party_imports(module: str) -> set[str]:
    """Imports outside the standard library, of `module` and of every stages module it reaches."""
    seen, todo, found = set(), [module], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        files = [module_file(current)]
        if files[0].name == "__init__.py" and (files[0].parent / "__main__.py").exists():
            files.append(files[0].parent / "__main__.py")  # `python -m package` runs __main__
        for name in {n for f in files for n in imported_names(f, current)}:
            top = name.split(".")[0]
            if top == "stages":
                if module_file(name).exists():
                    todo.append(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.add(name)
    return found


def providers(import_name: str) -> set[str]:
    parts = import_name.split(".")
    for length in range(len(parts), 0, -1):
        prefix = ".".join(parts[:length])
        if prefix in PROVIDERS:
            return PROVIDERS[prefix]
    return {canonicalize_name(parts[0])}


def test_the_import_scan_sees_what_the_stages_need():
    """The scan itself, on stages whose needs are known."""
    assert {"numpy", "pandas", "pandera.pandas", "pyarrow", "numba", "dask.distributed", "tqdm"} <= (
        third_party_imports("stages.voxelize")
    )
    assert "cupy" in third_party_imports("stages.voxelize")  # through the CUDA backend
    assert "PIL" in third_party_imports("stages.render")
    assert "mapbox_earcut" in third_party_imports("stages.convert_shapenet")  # polygons, through formats.polygons
    assert providers("dask.distributed") == {"distributed"} and providers("PIL.Image") == {"pillow"}


@pytest.mark.parametrize("backend", ["cpu", "cuda"])
def test_every_package_a_rule_imports_is_in_its_environment(backend):
    rules = workflow_rules({"voxelize": {"backend": backend}})
    checked = set()
    for rule in rules.values():
        module = stage_module(rule.shellcmd)
        if module is None:
            continue
        assert rule.conda_env is not None and rule.conda_env.is_file(), f"{rule.name}: no conda env file"
        available = set(env_packages(rule.conda_env))
        for name in sorted(third_party_imports(module)):
            if name.split(".")[0] in GPU_ONLY and rule.conda_env != GPU_ENV:
                continue
            assert providers(name) & available, (
                f"rule {rule.name} runs {module}, which imports {name}; "
                f"{rule.conda_env.relative_to(REPO)} has none of {sorted(providers(name))}"
            )
        checked.add(rule.name)
    voxelize = "voxelize_cuda" if backend == "cuda" else "voxelize"
    assert {"synthesize", "download", "convert_shapenet", "make_scenes", "render", voxelize} <= checked


def test_gpu_rules_use_the_gpu_environment_and_the_cuda_image():
    cpu = workflow_rules({"voxelize": {"backend": "cpu"}})
    cuda = workflow_rules({"voxelize": {"backend": "cuda"}})
    defaults = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["containers"]
    assert cuda["voxelize_cuda"].conda_env == GPU_ENV
    assert cuda["voxelize_cuda"].container == defaults["cuda"]
    for rule in cpu.values():
        if not rule.shellcmd:  # rules without a command (all, meshes_complete) run nothing
            continue
        if rule.name == "train" or rule.name.startswith("evaluate_"):  # the models: torch, GPUs where there are
            assert rule.conda_env == GPU_ENV and rule.container == defaults["cuda"], rule
        elif rule.name == "report":
            assert rule.conda_env == ENVS / "report.yaml" and rule.container == defaults["cpu"], rule
        else:
            assert rule.conda_env == ENVS / "data.yaml", rule
            assert rule.container == defaults["cpu"], rule
    assert {"train", "evaluate_corenet", "evaluate_r2n2", "train_h5", "eval_r2n2", "report"} <= set(cpu)


# --- container definitions -------------------------------------------------------------------------


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in map(str.strip, joined.splitlines())
        if line
    ]


def pip_installs(instructions) -> list[list[str]]:
    """The argument lists of every `pip install` in the RUN instructions."""
    installs = []
    for op, args in instructions:
        if op != "RUN":
            continue
        for command in args.split("&&"):
            words = shlex.split(command)
            if "pip" in words and "install" in words:
                installs.append(words[words.index("install") + 1 :])
    return installs


TORCH_PIN = next(str(r) for r in map(Requirement, PYPROJECT["project"]["dependencies"]) if r.name == "torch")
IMAGES = {"cpu": REPO / "containers" / "Dockerfile.cpu", "cuda": REPO / "containers" / "Dockerfile.cuda"}


@pytest.mark.parametrize("kind", IMAGES)
def test_an_image_is_python_311_and_installs_the_project_with_its_torch(kind):
    instructions = dockerfile(IMAGES[kind])
    (base,) = [args for op, args in instructions if op == "FROM"]
    # The tested Python (envs pin python=3.11), on Debian: Snakemake runs jobs with bash -c.
    assert base == "python:3.11-slim-bookworm"
    copied = [args.split()[0] for op, args in instructions if op == "COPY"]
    assert {"pyproject.toml", "stages"} <= set(copied)
    for source in copied:
        assert (REPO / source).exists(), f"{IMAGES[kind].name} copies {source}, which does not exist"
    installs = pip_installs(instructions)
    torch = [words for words in installs if TORCH_PIN in words]
    assert torch, f"{IMAGES[kind].name} does not install {TORCH_PIN}"
    cpu_index = "https://download.pytorch.org/whl/cpu"
    assert (cpu_index in torch[0]) == (kind == "cpu"), "CPU torch in the CPU image, PyPI's CUDA build in the CUDA image"
    project = [words for words in installs if any(w == "." or w.startswith(".[") for w in words)]
    assert project, f"{IMAGES[kind].name} does not install the project"
    assert installs.index(torch[0]) < installs.index(project[0]), "torch before the project, or pip fetches another build"
    extras = {w for w in project[0] if w.startswith(".[")}
    assert extras == ({".[cuda]"} if kind == "cuda" else set())


def test_the_cuda_extra_matches_torchs_cuda():
    """PyPI's torch 2.13.0 is built for CUDA 13; CuPy must be the cuda13x build."""
    (cupy,) = map(Requirement, PYPROJECT["project"]["optional-dependencies"]["cuda"])
    assert cupy.name == "cupy-cuda13x" and "ctk" in cupy.extras
    assert env_packages(GPU_ENV)["cupy-cuda13x"].startswith("==14.")


def test_the_build_context_leaves_out_results_and_data():
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "**", "everything is left out first"
    included = {line[1:].rstrip("/") for line in patterns if line.startswith("!")}
    assert included == {"pyproject.toml", "stages", "workflow", "config", "profiles"}
