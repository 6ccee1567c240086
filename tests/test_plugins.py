"""Methods from the user's own code: a module handed over with --plugin, and an installed package's entry point,
each listed by `augkd bench --list` and benchmarked beside the roster."""
import json, os, subprocess

from conftest import ROOT

TOY = '''
from augkd.methods import cell_parts, register
from augkd.train import evaluate

@register("toy", "a toy plugin method: the student as built, untrained")
def toy(cell):
    splits, teacher, student = cell_parts(cell)
    return evaluate(student, splits.student_test)
'''


def test_a_plugin_file_is_listed_and_benchmarked(tmp_path, cli):
    (tmp_path / "toy_methods.py").write_text(TOY)
    listed = cli("bench", "--plugin", "toy_methods.py", "--list")
    assert listed.returncode == 0, listed.stderr
    assert "toy              a toy plugin method: the student as built, untrained" in listed.stdout
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
    assert "toy              a toy plugin method" in listed.stdout
