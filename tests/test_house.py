"""Conventions a reader of the library relies on: every module opens with a whole sentence that says what it holds."""
import importlib
import json
import pkgutil
from pathlib import Path

import pytest

import augkd

MODULES = sorted(m.name for m in pkgutil.iter_modules(augkd.__path__) if not m.name.startswith("_"))


def test_every_notebook_module_is_listed():
    assert {"files", "losses", "generator", "anchor", "mixup", "config", "rundir", "pipeline", "baselines"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_module_docstring_is_one_whole_sentence(name):
    doc = (importlib.import_module(f"augkd.{name}").__doc__ or "").strip()
    assert doc, f"augkd.{name} has no docstring (its notebook's summary line)"
    assert doc[0].isupper() or doc[0] == "`", f"augkd.{name}'s docstring does not start a sentence: {doc[:60]!r}"
    assert doc.endswith("."), f"augkd.{name}'s docstring stops mid-sentence: ...{doc[-60:]!r}"
    assert "\n" not in doc, f"augkd.{name}'s docstring wraps: nbdev takes a notebook summary's first line only"


def test_readme_benchmark_table_is_computed_from_the_committed_results(monkeypatch):
    """The README's headline table is what the index notebook's code writes from `nbs/results/regimes.json`:
    recomputed here, it must stand in the README as committed (a rerun of the grid changes both, nothing is typed)."""
    root = Path(augkd.__file__).resolve().parents[1]
    cells = json.loads((root / "nbs" / "index.ipynb").read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    imports = next(c for c in code if "from augkd.bench import" in c)  # the index's imports, then the table's cell
    *body, last = next(c for c in code if "top1_markdown(" in c and c != imports).strip().split("\n")
    monkeypatch.chdir(root / "nbs")
    namespace = {}
    exec(imports + "\n" + "\n".join(body), namespace)
    table = eval(last, namespace).data.strip()
    assert "| augkd |" in table and "nbs/results" not in table
    assert table in (root / "README.md").read_text()


def test_readme_is_a_front_page():
    "The README is read at a glance: at most 150 lines, and it links every findings notebook (`nbs/3*.ipynb`)."
    root = Path(augkd.__file__).resolve().parents[1]
    text = (root / "README.md").read_text()
    assert len(text.splitlines()) <= 150, f"README.md has {len(text.splitlines())} lines"
    findings = sorted(p.name for p in (root / "nbs").glob("3*.ipynb"))
    assert findings and all(f"(nbs/{name})" in text for name in findings), findings


def test_the_bench_notebook_holds_no_findings():
    "`09_bench` holds the benchmark's code and its tests on toy rows: no cell of it reads the committed results."
    root = Path(augkd.__file__).resolve().parents[1]
    cells = json.loads((root / "nbs" / "09_bench.ipynb").read_text())["cells"]
    reading = [c["id"] for c in cells if c["cell_type"] == "code" and "results/" in "".join(c["source"])]
    assert not reading, f"09_bench cells that read committed results (move them to a findings notebook): {reading}"


def test_config_imports_no_stage_module():
    "The shared config sections sit below the stages: the stages import them, never the reverse (`augkd.stages` composes)."
    import ast
    tree = ast.parse(Path(importlib.import_module("augkd.config").__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"generator", "anchor", "mixup", "stages", "rundir", "pipeline", "augkd.generator", "augkd.anchor",
                           "augkd.mixup", "augkd.stages", "augkd.pipeline"}, imported


def test_run_directory_files_are_written_by_rundir_alone():
    "No module but `augkd.rundir` names a run directory's files to write them (reads go through `RunDir` paths too)."
    from augkd.rundir import RunDir
    root = Path(augkd.__file__).parent
    for path in root.glob("*.py"):
        if path.name in ("rundir.py", "_modidx.py", "teacher.py"): continue  # teacher.py writes a teacher's folder, no run
        text = path.read_text()
        for name in RunDir.FILES.values():
            for writer in ("atomic_write_text(", "write_text(", "atomic_save("):
                assert not any(writer in line and f'"{name}"' in line for line in text.splitlines()), (path.name, name)


def _imports(path: Path) -> set:
    "The package modules a module imports (`from .x import` and `from augkd.x import`, at any depth), by name."
    import ast
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and (node.level == 1 or node.module.startswith("augkd.")):
            names.add(node.module.split(".")[-1])
        if isinstance(node, ast.Import): names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("augkd.")}
    return names


def test_every_name_is_imported_from_its_home():
    "No module hands another module's names on: no `import *` between the package's modules."
    root = Path(augkd.__file__).parent
    for path in root.glob("*.py"):
        assert "import *" not in path.read_text(), path.name


def test_no_two_modules_import_each_other():
    "The package's imports run one way: no module reaches itself through the modules it imports."
    root = Path(augkd.__file__).parent
    graph = {p.stem: _imports(p) & set(MODULES) for p in root.glob("*.py") if p.stem in MODULES}
    def reaches(start, seen):
        for other in graph[start]:
            if other not in seen: seen.add(other); reaches(other, seen)
        return seen
    cycles = [m for m in graph if m in reaches(m, set())]
    assert not cycles, f"modules that import themselves through others: {cycles}"
