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
    """The README's benchmark table is what the index notebook's code writes from `nbs/results/regimes.json`:
    recomputed here, it must stand in the README as committed (a rerun of the grid changes both, nothing is typed)."""
    root = Path(augkd.__file__).resolve().parents[1]
    cells = json.loads((root / "nbs" / "index.ipynb").read_text())["cells"]
    code = next("".join(c["source"]) for c in cells if c["cell_type"] == "code" and "regimes_markdown(" in "".join(c["source"]))
    *body, last = code.strip().split("\n")
    monkeypatch.chdir(root / "nbs")
    namespace = {}
    exec("\n".join(body), namespace)
    table = eval(last, namespace).data.strip()
    assert "| augkd |" in table and "nbs/results" not in table
    assert table in (root / "README.md").read_text()


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
