"""Run the notebooks that show pictures and keep their outputs, so they show them when opened unrun.

Plotly figures are kept as PNG images (plotly's `png` renderer, through kaleido and a Chromium
browser: `pip install kaleido`, Debian's `chromium`), so they show on code hosts and in a fresh
JupyterLab alike; then `nbdev_clean` strips the metadata. Every notebook's size after rendering is
checked against BUDGET_KB. Run it after changing what these notebooks show:

    python scripts/render_outputs.py            # all of NOTEBOOKS, TABLES and RESULTS
    python scripts/render_outputs.py 20_tutorial

The findings notebooks (`RESULTS`, and `35_labels` among `NOTEBOOKS` for its figures) keep the outputs of their cells,
computed from the committed results (`nbs/results/*.json`); `RESULTS` run as `nbdev_test` runs them, without the `slow`
cells. Run it after committing new results (the README's figures and table are `index`'s outputs: then run
`python scripts/make_readme.py`).
"""
import base64, io, json, os, shutil, subprocess, sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["index", "04_generator", "05_anchor", "06_mixup", "10_viz", "20_tutorial", "35_labels"]
TABLES = ["07a1_stages", "07d_methods", "08_baselines"]  # they show tables (the config, the stages, the methods), kept as outputs
RESULTS = ["30_headline", "31_calibration", "33_roster", "34_compositions", "36_reference", "37_speed"]  # tables from committed results
BUDGET_KB = 400  # per notebook, outputs included


def render(name: str) -> int:
    "Execute `nbs/NAME.ipynb` in place with figures rendered as PNG; return its size in KB."
    env = {**os.environ, "PLOTLY_RENDERER": "png", "AUGKD_REDUCER": os.environ.get("AUGKD_REDUCER", "pca"),
           "BROWSER_PATH": os.environ.get("BROWSER_PATH") or shutil.which("chromium") or ""}
    path = ROOT / "nbs" / f"{name}.ipynb"
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                    "--ExecutePreprocessor.timeout=1200", str(path)], cwd=ROOT / "nbs", env=env, check=True)
    shrink_pictures(path)
    subprocess.run(["nbdev_clean", "--fname", str(path)], cwd=ROOT, check=True)
    return path.stat().st_size // 1024


def render_results(name: str) -> int:
    "Execute `nbs/NAME.ipynb` in place as `nbdev_test` does, its `slow`, `notest` and `eval: false` cells left out, keeping the outputs; its size in KB."
    from execnb.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    path = ROOT / "nbs" / f"{name}.ipynb"
    notebook, here = read_nb(path), os.getcwd()
    os.chdir(path.parent)
    skipped = ("#| slow", "#| notest", "#| eval: false")  # what `nbdev_test` leaves out without flags (settings.ini's tst_flags)
    try: CaptureShell().run_all(notebook, exc_stop=True, preproc=lambda cell: cell.cell_type == "code" and any(d in cell.source for d in skipped))
    finally: os.chdir(here)
    write_nb(notebook, path)
    subprocess.run(["nbdev_clean", "--fname", str(path)], cwd=ROOT, check=True)
    return path.stat().st_size // 1024


def shrink_pictures(path: Path) -> None:
    """Keep one PNG per picture (no JPEG twin), re-encoded with a 256-colour palette: a fraction of the bytes.
    Live widgets' outputs and saved state go: a stored notebook has no kernel to draw them (the cells show static pictures too)."""
    notebook = json.loads(path.read_text())
    notebook["metadata"].pop("widgets", None)  # the widgets' saved state: megabytes a stored notebook cannot use
    for cell in notebook["cells"]:
        if "outputs" in cell:
            cell["outputs"] = [o for o in cell["outputs"] if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" not in data: continue
            data.pop("image/jpeg", None)
            picture = Image.open(io.BytesIO(base64.b64decode("".join(data["image/png"])))).convert("RGB")
            buffer = io.BytesIO()
            picture.quantize(256, method=Image.Quantize.MEDIANCUT).save(buffer, format="PNG", optimize=True)
            data["image/png"] = base64.b64encode(buffer.getvalue()).decode()
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    sizes = {name: (render_results if name in RESULTS else render)(name) for name in (sys.argv[1:] or NOTEBOOKS + TABLES + RESULTS)}
    for name, kb in sizes.items(): print(f"{name}: {kb} KB" + ("  OVER BUDGET" if kb > BUDGET_KB else ""))
    sys.exit(any(kb > BUDGET_KB for kb in sizes.values()))
