"""The structure of the code, computed from the source: no import cycles among `stages` modules,
model families only inside `stages/families/`, every registered family complete, and every CLI
behind the one wrapper (tests/test_cli_errors.py runs them on a missing input)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stages.families import families
from stages.families.base import Family

REPO = Path(__file__).resolve().parents[1]
STAGES = REPO / "stages"
FAMILY_NAMES = {f.name for f in families()}
# Where a family's name is also the name of something else, on purpose: the network modules that
# a family adds (stages/models/, whose "corenet" layout/arithmetic/preprocessing is the released
# code's), CoReNet's released checkpoint format (import_checkpoint corenet) and scene source
# (tables.SCENES.source: our scenes or CoReNet's released ones).
NAMED_SOURCES = ("stages.models.", "stages.import_checkpoint", "stages.tables")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(STAGES.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_modules(name: str) -> set[str]:
    """The `stages` modules that module `name` imports anywhere (functions included), except
    under `if TYPE_CHECKING:`; relative imports resolved, `from pkg import mod` counted as mod."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in MODULES and m != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = dfs(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = dfs(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_import_scan_resolves_relative_imports():
    assert "stages.families" in imported_modules("stages.model_config")
    assert "stages.training.checkpoints" in imported_modules("stages.training.loop")
    assert "stages.families.corenet.task" in imported_modules("stages.families.corenet")  # inside a method


def test_no_import_cycles_among_stages_modules():
    graph = {name: imported_modules(name) for name in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _family_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for every place a family name is compared with or listed."""
    hits = []

    def is_name(node) -> bool:
        return isinstance(node, ast.Constant) and node.value in FAMILY_NAMES

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(is_name(n) for n in [node.left, *node.comparators]):
            hits.append((node.lineno, "compared"))
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(is_name(e) for e in node.elts):
            hits.append((node.lineno, "listed"))
        elif isinstance(node, ast.Dict) and any(is_name(k) for k in node.keys if k is not None):
            hits.append((node.lineno, "a dict key"))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("startswith", "endswith") and any(is_name(a) for a in node.args)):
            hits.append((node.lineno, f"{node.func.attr}()"))
        elif isinstance(node, ast.Match):
            hits.append((node.lineno, "matched"))
    return hits


def test_the_family_scan_sees_branches_and_lists():
    code = 'if spec.family == "r2n2": pass\nX = ("corenet", "r2n2")\nY = {"corenet": 1}\nm.startswith("r2n2")\n'
    assert [what for _, what in _family_literals(ast.parse(code))] == ["compared", "listed", "a dict key", "startswith()"]
    assert _family_literals(ast.parse('path = f"{results}/r2n2/views.parquet"')) == []


def test_no_module_outside_families_branches_on_or_lists_family_names():
    offenders = []
    for name, path in MODULES.items():
        if name == "stages.families" or name.startswith(("stages.families.", *NAMED_SOURCES)):
            continue
        for line, what in _family_literals(ast.parse(path.read_text())):
            offenders.append(f"{path.relative_to(REPO)}:{line}: a family name {what}")
    # The rules are not Python: a family name compared or tested for there (config sections such
    # as `config["r2n2"]`, 3D-R2N2's multi-view data, are data sources and stay).
    names = "|".join(map(re.escape, sorted(FAMILY_NAMES)))
    branch = re.compile(rf"""(==|!=|\bin)\s*[(\[{{]?\s*["']({names})["']|["']({names})["']\s*(==|!=|,)|with\(["']({names})""")
    for path in sorted((REPO / "workflow").rglob("*.smk")) + [REPO / "workflow" / "Snakefile"]:
        for number, text in enumerate(path.read_text().splitlines(), 1):
            if branch.search(text):
                offenders.append(f"{path.relative_to(REPO)}:{number}: a family name compared or listed")
    assert offenders == []


@pytest.mark.parametrize("family", families(), ids=lambda f: f.name)
def test_every_registered_family_is_complete(family: Family):
    configs = [p for p in (REPO / "config" / "models").glob("*.yaml")
               if yaml.safe_load(p.read_text()).get("family") == family.name]
    assert configs, f"no config/models/*.yaml of family {family.name}"
    assert family.title and family.train_inputs and family.eval_inputs
    roles = [o.role for o in family.outputs]
    assert "summary" in roles and len(roles) == len(set(roles))
    assert type(family).report_section is not Family.report_section
    assert type(family).read_report is not Family.read_report
    assert (REPO / "workflow" / "report").is_dir()
    for out in family.outputs:
        if out.report is not None:
            assert (REPO / "workflow" / "report" / out.report[1]).is_file(), out.report[1]


def test_every_family_gets_its_rules():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules"], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    rules = set(result.stdout.split())
    assert "train" in rules
    assert {f"evaluate_{f.name}" for f in families()} <= rules
    models = [p.stem for p in (REPO / "config" / "models").glob("*.yaml")]
    assert {f"{stage}_{m}" for m in models for stage in ("train", "eval")} <= rules


def cli_modules() -> list[str]:
    """Modules run as `python -m stages.<x>`: those with a `__main__` block (or package __main__)."""
    return sorted(name for name, path in MODULES.items() if name != "stages.cli"
                  and (path.name == "__main__.py" or '__name__ == "__main__"' in path.read_text()))


def test_every_cli_goes_through_the_one_wrapper():
    unwrapped = []
    for name in cli_modules():
        tree = ast.parse(MODULES[name].read_text())
        calls = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
        imports = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   and (node.module or "").endswith("cli") for alias in node.names}
        if not ("run" in calls and "run" in imports):
            unwrapped.append(name)
    assert cli_modules() and unwrapped == []
