"""Methods from the user's own code: a module handed over with --plugin, and an installed package's entry point,
each listed by `augkd bench --list` and benchmarked beside the roster; a name bound once, replaced only when asked;
a method defined in a notebook benchmarked by worker processes."""
import json, os, subprocess, sys

from conftest import ROOT

TOY = '''
from augkd.cells import cell_parts
from augkd.methods import register
from augkd.metrics import evaluate

@register("toy", "a toy plugin method: the student as built, untrained")
def toy(cell):
    splits, teacher, student = cell_parts(cell)
    return evaluate(student, splits.student_test)
'''


def test_a_plugin_file_is_listed_and_benchmarked(tmp_path, cli):
    (tmp_path / "toy_methods.py").write_text(TOY)
    listed = cli("bench", "--plugin", "toy_methods.py", "--list")
    assert listed.returncode == 0, listed.stderr
    assert "toy              [toy(cell)] a toy plugin method: the student as built, untrained" in listed.stdout
    done = cli("bench", "--plugin", "toy_methods.py", "--methods", "toy,wo_kd", "--preset", "quick", "--settings", "HP-M",
               "--seeds", "0", "--shots", "5", "--jobs", "2", "--out", tmp_path / "bench")  # worker processes import it too
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "bench" / "bench.json").read_text())["cells"]
    assert [r["method"] for r in rows] == ["toy", "wo_kd"]
    assert "| toy |" in (tmp_path / "bench" / "bench.md").read_text()
    missing = cli("bench", "--plugin", "nowhere.py", "--list")
    assert missing.returncode == 2 and "the augkd plugin nowhere.py cannot be imported" in missing.stderr


def test_an_installed_package_registers_through_its_entry_point(tmp_path, cli):
    site = tmp_path / "site"
    (site / "toy_pkg").mkdir(parents=True)
    (site / "toy_pkg" / "__init__.py").write_text("")
    (site / "toy_pkg" / "methods.py").write_text(TOY)
    info = site / "toy_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[augkd.methods]\ntoy = toy_pkg.methods\n")
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    listed = subprocess.run(["augkd", "bench", "--list"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "toy              [toy(cell)] a toy plugin method" in listed.stdout


MINE = '''
from augkd.cells import cell_parts
from augkd.methods import register
from augkd.metrics import evaluate

@register("wo_kd", "the student as built, under the roster's name"{replace})
def wo_kd(cell):
    splits, teacher, student = cell_parts(cell)
    return evaluate(student, splits.student_test)
'''
GRID = ["--methods", "wo_kd", "--preset", "quick", "--settings", "HP-M", "--seeds", "0", "--shots", "5"]


def test_a_plugin_that_takes_a_roster_name_is_refused_unless_it_replaces_it(tmp_path, cli):
    (tmp_path / "mine.py").write_text(MINE.format(replace=""))
    refused = cli("bench", "--plugin", "mine.py", "--list")
    assert refused.returncode == 2
    assert "method 'wo_kd' is registered already by augkd; augkd_plugin_mine_" in refused.stderr, refused.stderr
    assert "pass replace=True to replace it" in refused.stderr
    (tmp_path / "mine.py").write_text(MINE.format(replace=", replace=True"))
    listed = cli("bench", "--plugin", "mine.py", "--list")
    assert listed.returncode == 0 and "(replaces augkd's wo_kd)" in listed.stdout, listed.stderr
    built_in = cli("bench", *GRID, "--out", tmp_path / "bench")
    assert built_in.returncode == 0, built_in.stderr[-2000:]
    replaced = cli("bench", *GRID, "--plugin", "mine.py", "--out", tmp_path / "bench")  # a folder where the built-in ran
    fresh = cli("bench", *GRID, "--plugin", "mine.py", "--out", tmp_path / "fresh")
    assert replaced.returncode == 0 and fresh.returncode == 0, replaced.stderr[-2000:] + fresh.stderr[-2000:]
    row = lambda folder: json.loads((tmp_path / folder / "bench.json").read_text())["cells"][0]
    assert row("bench")["acc"] == row("fresh")["acc"], "the plugin's row shows its own figure, not the built-in's stored one"
    assert row("bench")["key"] != json.loads(next((tmp_path / "bench" / "cells" / "wo_kd").glob("*/cell.json")).read_text())["key"] \
        or len(list((tmp_path / "bench" / "cells" / "wo_kd").iterdir())) == 2, "other code: another cell"
    assert row("bench")["code"].startswith("augkd_plugin_mine_")


NOTEBOOK_CELLS = [
    "import augkd.bench\nfrom augkd.cells import cell_parts\nfrom augkd.methods import register\nfrom augkd.metrics import evaluate",
    '@register("nb_toy", "the student as built, defined in a notebook")\ndef nb_toy(cell):\n    splits, teacher, student = cell_parts(cell)\n    return evaluate(student, splits.student_test)',
    'rows = augkd.bench.bench(["nb_toy"], ["HP-M"], [0, 1], [5], "quick", "bench", progress=False, jobs=2)\nprint([r["method"] for r in rows])',
]


def test_a_method_defined_in_a_notebook_runs_in_worker_processes(tmp_path):
    "In a real Jupyter kernel, a method registered in a cell benchmarks with two worker processes (shipped by value)."
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS])
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert "['nb_toy', 'nb_toy']" in nb.cells[-1].outputs[-1]["text"], nb.cells[-1].outputs
    rows = json.loads((tmp_path / "bench" / "bench.json").read_text())["cells"]
    assert [r["seed"] for r in rows] == [0, 1] and all(r["code"].startswith("__main__.nb_toy@") for r in rows)


def test_a_modules_notebook_run_before_the_module_is_imported_is_one_method_not_two():
    """The baselines notebook's cells run in a kernel (they register the roster from `__main__`), then `augkd.bench` is
    imported (it imports `augkd.baselines`, which registers the same records): each name keeps one method, the
    package's, without an error; as `nbdev_test` runs notebooks one after another in one worker process. In a fresh
    process: one that imported augkd.baselines before holds its records already."""
    script = f"""
from execnb.nbio import read_nb
from execnb.shell import CaptureShell
shell = CaptureShell()
for cell in read_nb({str(ROOT / "nbs" / "08_baselines.ipynb")!r}).cells:
    if cell.cell_type == "code" and cell.source.startswith("#| export"):
        shell.run(cell.source)
        assert shell.exc is None, shell.exc
shell.run("from augkd.methods import METHODS; notebook = METHODS['kd'].origin\\n"
          "import augkd.bench\\n"
          "origins = {{METHODS[n].origin for n in METHODS}}")
assert shell.exc is None, shell.exc
print(shell.user_ns["notebook"], sorted(shell.user_ns["origins"]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[-2] == "__main__ ['augkd']", done.stdout[-2000:]
