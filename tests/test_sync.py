"""Notebooks and library stay in sync: exporting the notebooks reproduces `augkd/` exactly."""
import re, shutil, subprocess
from pathlib import Path

from conftest import ROOT


def test_nbdev_export_reproduces_library(tmp_path):
    for name in ("nbs", "augkd"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    for name in ("settings.ini", "setup.py", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    done = subprocess.run(["nbdev_export"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    exported = sorted(p.relative_to(tmp_path) for p in (tmp_path / "augkd").glob("*.py"))
    committed = sorted(p.relative_to(ROOT) for p in (ROOT / "augkd").glob("*.py"))
    assert exported == committed
    stale = [str(p) for p in exported if (tmp_path / p).read_text() != (ROOT / p).read_text()]
    assert not stale, f"library out of sync with notebooks (run nbdev_export): {stale}"


def test_every_module_has_its_notebook():
    modules = {p.stem for p in (ROOT / "augkd").glob("*.py")} - {"__init__", "_modidx"}
    owners = set()
    for nb in (ROOT / "nbs").glob("*.ipynb"):
        text = nb.read_text()
        owners |= {m for m in modules if f"#| default_exp {m}\\n" in text or f'"#| default_exp {m}"' in text}
    assert owners == modules, f"modules without a notebook: {modules - owners}"


def test_readme_is_the_export_of_the_index_notebook():
    import sys
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_readme import PICTURES, readme
    text, pictures = readme()
    assert (ROOT / "README.md").read_text() == text, "README.md is not the export of nbs/index.ipynb: run python scripts/make_readme.py"
    committed = {str(p.relative_to(ROOT)): p.read_bytes() for p in (ROOT / PICTURES).glob("*")}
    assert committed == pictures, "nbs/index_files/ is not the export of nbs/index.ipynb: run python scripts/make_readme.py"
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    outside = [t for t in targets if "://" in t or not (ROOT / t.split("#")[0]).exists()]
    assert not outside, f"README links outside the repository: {outside}"


def test_notebooks_hold_no_saved_widget_state():
    import json
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        notebook = json.loads(nb.read_text())
        assert "widgets" not in notebook["metadata"], f"{nb.name} holds saved widget state: python scripts/render_outputs.py strips it"
        views = [o for c in notebook["cells"] for o in c.get("outputs", []) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert not views, f"{nb.name} keeps live widgets' outputs, which a stored notebook cannot show"


def test_notebook_cell_ids_are_unique():
    import json
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        ids = [cell.get("id") for cell in json.loads(nb.read_text())["cells"]]
        assert len(set(ids)) == len(ids), f"{nb.name} repeats cell ids"


def test_notebooks_keep_their_pictures_within_the_size_budget():
    import json, sys
    sys.path.insert(0, str(ROOT / "scripts"))
    from render_outputs import BUDGET_KB, NOTEBOOKS
    for name in NOTEBOOKS:
        path = ROOT / "nbs" / f"{name}.ipynb"
        pictures = [o for c in json.loads(path.read_text())["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        assert pictures, f"{name} shows no picture when opened unrun: python scripts/render_outputs.py {name}"
        assert path.stat().st_size <= BUDGET_KB * 1024, f"{name} is over its {BUDGET_KB} KB budget"


def test_config_and_method_pages_show_their_tables():
    "The config table, the stage table and the method table are kept as outputs: a reader sees the values unrun."
    import json, sys
    sys.path.insert(0, str(ROOT / "scripts"))
    from render_outputs import TABLES
    for name in TABLES:
        outputs = [o for c in json.loads((ROOT / "nbs" / f"{name}.ipynb").read_text())["cells"] for o in c.get("outputs", [])]
        shown = [o for o in outputs if "text/markdown" in o.get("data", {}) or "text/plain" in o.get("data", {}) or o.get("text")]
        assert shown, f"{name} shows no table when opened unrun: python scripts/render_outputs.py {name}"
