"""How fast the workbench is on a run: opening it with every view built, the live view's cost to a training
stage, the report and a comparison page. Speed targets belong here, not in a timed test.

    python scripts/workbench_bench.py runs/HP-M-default-s0 [--compare-with runs/HP-M-noanchor-s0] [--json nbs/results/workbench.json]

Opening: a fresh process imports augkd (not timed: "a kernel that has imported augkd"), then `open_workbench(RUN)`
builds the run picker and every linked view (anchor map, sample, mixup path, uncertainty) over one load; the first
open of a run without a stored map fits it (UMAP: 10-20 s of numba compilation), so both are reported. The live
view: the seconds spent inside `LiveView`'s callbacks while the run's stages train again (a fresh run with the
run's config, in a temporary folder), against each stage's seconds. The report and the comparison: wall seconds.

In the browser (`--browser`: chromium driving JupyterLab; needs Debian's `chromium` and `playwright`):

    python scripts/workbench_bench.py runs/HP-M-default-s0 --browser --points 20000 \
        --json nbs/results/workbench_browser.json

the seconds from running the cell `open_workbench(RUN)` (augkd imported in the cell before) to every view
drawn (each map plotted, each image loaded), `--opens` times in one kernel; then a workbench of `--points`
samples (the run's student-domain images of every split, repeated with a little pixel noise to that count, a
domain holding fewer; a PCA map fitted on them; neither timed) opened the same way, and the seconds from the
mouse to every view showing the answer, `--repeats` times each: a click on a point (the sample in focus shown
and ringed in every map), a box selection (the samples selected in every map) and a filter (the teacher right
or wrong: faded alike in every map)."""
import argparse, contextlib, json, os, secrets, shutil, socket, subprocess, sys, tempfile, time
from pathlib import Path

OPEN = """
import json, sys, time
import augkd.widgets
start = time.perf_counter()
app = augkd.widgets.open_workbench(sys.argv[1])
print(json.dumps({"open_seconds": time.perf_counter() - start, "views": len(app.body.children)}))
"""


def open_seconds(run_dir: str) -> dict:
    "Seconds to `open_workbench` in a fresh process that has imported augkd."
    out = subprocess.run([sys.executable, "-c", OPEN, run_dir], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def live_cost(run_dir: str) -> dict:
    "The run's config trained again with a LiveView whose callbacks are timed: seconds inside them per stage, and each stage's seconds."
    from augkd.live import LiveView
    from augkd.pipeline import run
    from augkd.stages import Config
    spent = {}

    class Timed(LiveView):
        def __getattribute__(self, name):
            handler = super().__getattribute__(name)
            if name not in ("before_fit", "after_step", "after_epoch", "after_fit"): return handler
            def timed(learn):
                start = time.perf_counter()
                try: return handler(learn)
                finally:
                    stage = learn.name
                    spent[stage] = spent.get(stage, 0.0) + time.perf_counter() - start
            return timed

    import IPython.display, plotly.io as pio
    # no notebook here to send the pictures to: serialize each as a notebook would, instead of printing its repr
    sent = lambda *objs, **_: [pio.to_json(o) if hasattr(o, "to_plotly_json") else repr(o) for o in objs]
    IPython.display.display = sent
    config = Config.load(run_dir)
    with tempfile.TemporaryDirectory() as tmp:
        view = Timed(Path(tmp) / "run", refresh=1.0)
        results = run(config, Path(tmp) / "run", progress=False, callbacks=[view])
    stages = {name: info["seconds"] for name, info in results["stages"].items() if "seconds" in info}
    by_stage = {name: sum(v for k, v in spent.items() if f"({name})" in k) for name in stages}
    return {"stage_seconds": stages, "live_seconds": by_stage, "redraws": view.redraws,
            "share": {k: by_stage[k] / stages[k] for k in stages}, "student": results["student"]["acc"]}


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def scale_workbench(run_dir: str, points: int, prior: int = 100, seed: int = 0):
    """A `Workbench` over `points` samples of the run: its student-domain images of every split in turn,
    repeated (each copy after the first with N(0, 0.02) pixel noise, clipped to [0, 1]) to that count, seen
    through its models; a PCA map."""
    import numpy as np, torch
    from augkd.pipeline import load_run
    from augkd.viz import VIEW_SPLITS, fit_map, map_latents, schedule_marks, views_of
    from augkd.widgets import Workbench
    parts = load_run(run_dir)
    domains = {name: getattr(parts.splits, field) for name, field in VIEW_SPLITS.items()}
    images = torch.cat([d.images for d in domains.values()])
    labels = torch.cat([d.labels for d in domains.values()])
    names = np.concatenate([[name] * len(d.labels) for name, d in domains.items()])
    index = np.concatenate([np.arange(len(d.labels)) for d in domains.values()])
    which = np.arange(points) % len(images)
    noise = torch.randn((points, *images.shape[1:]), generator=torch.Generator().manual_seed(seed)) * 0.02
    noise[: min(points, len(images))] = 0
    views = views_of(parts, (images[which] + noise).clamp(0, 1), labels[which], prior, seed)
    views.update(split=names[which], index=index[which], points=f"scale:{points}:{prior}:{seed}")
    return Workbench(parts, views, fit_map(map_latents(views), "pca"), schedule_marks(parts.config))


def _cell(source: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "id": secrets.token_hex(4), "metadata": {}, "outputs": [],
            "source": source}


def bench_notebook(run_dir: str, points: int, opens: int) -> dict:
    "The notebook the browser runs: augkd imported; `opens` cells opening the run; `points` samples, made and opened."
    here = Path(__file__).resolve().parent
    cells = [f"import sys\nsys.path.insert(0, {str(here)!r})\nimport workbench_bench\n"
             "from augkd.widgets import open_workbench"]
    cells += [f"app = open_workbench({run_dir!r})\nprint('figures', len(app.figures))\napp.widget"] * opens
    cells += [f"big = workbench_bench.scale_workbench({run_dir!r}, {points})",
              "app = open_workbench(big)\nprint('figures', len(app.figures))\napp.widget"]
    kernel = {"display_name": "python3", "language": "python", "name": "python3"}
    return {"cells": [_cell(c) for c in cells], "metadata": {"kernelspec": kernel}, "nbformat": 4, "nbformat_minor": 5}


@contextlib.contextmanager
def jupyterlab(root: Path):
    "JupyterLab on 127.0.0.1 with a token, serving `root`; yields a function from a notebook's name to its URL."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    log = open(root / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--allow-root"],
        stdout=subprocess.DEVNULL, stderr=log, env=os.environ.copy())
    try:
        deadline = time.time() + 60
        while time.time() < deadline and server.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0: break
            time.sleep(0.5)
        else: raise RuntimeError("JupyterLab did not start: " + (root / "jupyterlab.log").read_text()[-2000:])
        lab = f"http://127.0.0.1:{port}/lab/workspaces"
        yield lambda notebook: f"{lab}/{secrets.token_hex(4)}/tree/{notebook}?token={token}&reset"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


# every view of a cell's output drawn: as many plots as the kernel printed, each plotted, the images loaded
DRAWN = """(cell) => {
    const said = /figures (\\d+)/.exec(cell.querySelector('.jp-OutputArea') ? cell.querySelector('.jp-OutputArea').textContent : '');
    const plots = [...cell.querySelectorAll('.js-plotly-plot')], images = [...cell.querySelectorAll('.widget-image')];
    return said !== null && plots.length === Number(said[1]) && plots.every(gd => gd._fullLayout && gd.querySelector('.main-svg'))
        && images.every(i => i.complete) && images.filter(i => i.naturalWidth > 0).length >= 2;  // an empty one waits for a hover
}"""

# what the views show of the selection: the captions of the sample in focus, the rings, and per map the samples it
# shows selected and those it fades (a per-point opacity under 0.2), each set as "how many:their sum"
STATE = """(cell) => {
    const plots = [...cell.querySelectorAll('.js-plotly-plot')];
    const samples = gd => gd.data.filter(t => t.meta === 'samples');
    const of = (t, k) => Number(t.customdata[k]);
    const sign = numbers => { const set = new Set(numbers); return `${set.size}:${[...set].reduce((a, b) => a + b, 0)}` };
    return {
        captions: [...cell.querySelectorAll('.widget-label, .widget-html')].map(e => e.textContent)
            .filter(t => /^sample \\d+, class/.test(t)).map(t => t.split(',')[0]),
        rings: plots.map(gd => gd.data.filter(t => (t.name || '').startsWith('selected sample')).map(
            t => Array.from(t.x).join()).join()),
        selected: plots.map(gd => sign(samples(gd).flatMap(t => Array.from(t.selectedpoints || []).map(k => of(t, k))))),
        faded: plots.map(gd => sign(samples(gd).flatMap(t => Array.isArray(t.marker.opacity) || ArrayBuffer.isView(
            t.marker.opacity) ? Array.from(t.marker.opacity).flatMap((o, k) => o < 0.2 ? [of(t, k)] : []) : []))),
    };
}"""

# the page positions of a plot's points that answer the mouse (plotly's axes map its data to pixels), and each one's
# sample (-1 for a prior draw)
POINTS = """(gd) => {
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
    return gd._fullData.filter(t => t.visible === true && t.hoverinfo !== 'skip' && t.customdata && t.xaxis === 'x')
        .flatMap(t => Array.from(t.x).map((x, k) => [box.left + xa._offset + xa.l2p(x), box.top + ya._offset
                                                      + ya.l2p(t.y[k]), t.meta === 'samples' ? Number(t.customdata[k]) : -1]));
}"""


def click_targets(points: list, count: int, focus: int, room: float = 6.0) -> list:
    """`count` (x, y, sample) of `points` (`POINTS`) to click in turn: sample points far out on the map, those with no
    other point within `room` pixels first (a click lands on them), each another sample than the one before and more
    than `room` pixels from where the focus is then (the first from every point of `focus`, the sample in focus): a
    click takes whichever point lies under it, a sample's repeat drawn on it included, so none may be the focus."""
    import numpy as np
    xy, sample = np.array([p[:2] for p in points]), np.array([p[2] for p in points])
    mine = np.flatnonzero(sample >= 0)
    outward = mine[np.argsort(-np.linalg.norm(xy[mine] - xy[mine].mean(0), axis=1))][:200]
    clear = [i for i in outward if np.sort(np.linalg.norm(xy - xy[i], axis=1))[1] > room]
    chosen, at, last = [], xy[sample == focus], focus
    for i in clear + [i for i in outward if i not in clear]:  # crowded ones only where too few are clear
        if len(chosen) == count: break
        if sample[i] != last and (len(at) == 0 or np.linalg.norm(at - xy[i], axis=1).min() > room):
            chosen.append((float(xy[i][0]), float(xy[i][1]), int(sample[i])))
            at, last = xy[i][None], int(sample[i])
    return chosen


def _run_cell(page, cell, timeout_ms: int) -> float:
    "Run `cell` (a locator), and the seconds until every view of its output is drawn."
    cell.locator(".jp-InputArea-editor").click()
    start = time.perf_counter()
    page.keyboard.press("Shift+Enter")
    page.wait_for_function(DRAWN, arg=cell.element_handle(), timeout=timeout_ms)
    return time.perf_counter() - start


def _answered(page, cell, done: str, before: dict) -> float:
    "Wait until the views' state (`STATE`) passes the JavaScript test `done(state, before)`; when the wait began, to then."
    from playwright.sync_api import TimeoutError
    start = time.perf_counter()
    try: page.wait_for_function(f"([cell, before]) => (({done}))(({STATE})(cell), before)", arg=[cell.element_handle(), before],
                                polling=20)  # milliseconds: a hidden or busy page's animation frames would lag
    except TimeoutError:
        raise TimeoutError(f"the views did not answer: before {json.dumps(before)}, now {json.dumps(cell.evaluate(STATE))}") from None
    return time.perf_counter() - start


def browser_figures(run_dir: str, points: int, opens: int = 3, repeats: int = 3,
                    screenshot: Path = None) -> dict:
    """The browser's figures (see the module's docstring): open seconds, and at `points` samples click, box and
    filter seconds; the page as it ends (or fails) saved to `screenshot`. A step that fails ends the measuring: the
    figures so far are returned, with `failed` saying what stopped it."""
    from playwright.sync_api import sync_playwright
    figures = {"run": run_dir, "points": points, "open_seconds": [], "click_seconds": [], "box_seconds": [],
               "filter_seconds": []}
    with tempfile.TemporaryDirectory() as tmp, jupyterlab(Path(tmp)) as url, sync_playwright() as p:
        (Path(tmp) / "bench.ipynb").write_text(json.dumps(bench_notebook(run_dir, points, opens), indent=1))
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        figures["browser"] = f"chromium {browser.version}"
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.set_default_timeout(60_000)
        try: _measure(page, url("bench.ipynb"), figures, opens, repeats)
        except Exception as failure:  # the figures measured before it are kept, with where it stopped
            figures["failed"] = f"{type(failure).__name__}: {str(failure).splitlines()[0] if str(failure) else ''}"
        finally:
            if screenshot: page.screenshot(path=str(screenshot), full_page=True)
            browser.close()
    return figures


def _measure(page, url: str, figures: dict, opens: int, repeats: int):
    "`browser_figures`' steps in `page`: its figures appended to `figures`."
    page.goto(url)
    page.locator(".jp-Notebook").wait_for()
    page.get_by_text("| Idle").wait_for()
    cells = page.locator(".jp-CodeCell")
    first = cells.nth(0)
    first.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    page.wait_for_function("(c) => /\\[\\d+\\]/.test(c.querySelector('.jp-InputPrompt').textContent)",
                           arg=first.element_handle(), timeout=300_000)
    for k in range(1, opens + 1): figures["open_seconds"].append(_run_cell(page, cells.nth(k), 300_000))
    made = cells.nth(opens + 1)
    made.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    page.wait_for_function("(c) => /\\[\\d+\\]/.test(c.querySelector('.jp-InputPrompt').textContent)",
                           arg=made.element_handle(), timeout=1_200_000)
    cell = cells.nth(opens + 2)
    figures["open_seconds_at_scale"] = _run_cell(page, cell, 600_000)
    plot = cell.locator(".js-plotly-plot").first
    plot.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    points = plot.evaluate(POINTS)
    xs, ys = sorted(p[0] for p in points if p[2] >= 0), sorted(p[1] for p in points if p[2] >= 0)
    focus = int(cell.evaluate(STATE)["captions"][0].split()[1])
    for x, y, _ in click_targets(points, repeats, focus):
        before = cell.evaluate(STATE)
        page.mouse.move(x, y)
        page.mouse.click(x, y)
        figures["click_seconds"].append(_answered(page, cell, """(now, b) => now.captions.length > 0 &&
            now.captions.every(c => c === now.captions[0]) && now.captions[0] !== b.captions[0] &&
            now.rings.every((r, k) => r === '' || r !== b.rings[k])""", before))
    plot.hover()
    plot.locator(".modebar-btn[data-title='Box Select']").click()
    page.wait_for_function("(gd) => gd._fullLayout.dragmode === 'select'", arg=plot.element_handle())
    for k in range(repeats):  # each box larger than the last (a drag that starts inside a selection moves it)
        q = lambda values, f: values[min(len(values) - 1, int(f * len(values)))]
        lo, hi = 0.4 - 0.3 * k / max(1, repeats - 1), 0.6 + 0.3 * k / max(1, repeats - 1)
        # at least 40 px a side, more for each box: a thinner drag is a click to plotly
        (x0, x1), (y0, y1) = [(min(q(v, lo), q(v, 0.5) - 20 - 10 * k), max(q(v, hi), q(v, 0.5) + 20 + 10 * k))
                              for v in (xs, ys)]
        before = cell.evaluate(STATE)
        page.mouse.move(x0, y0, steps=5)  # as a hand drags: onto the corner, a pause, pressed, across, released
        page.wait_for_timeout(200)
        page.mouse.down()
        page.wait_for_timeout(100)
        page.mouse.move(x1, y1, steps=8)
        page.wait_for_timeout(100)
        page.mouse.up()
        figures["box_seconds"].append(_answered(page, cell, """(now, b) => now.selected[0] !== b.selected[0] &&
            parseInt(now.selected[0]) > 1 && now.selected.every(n => n === now.selected[0])""", before))
    for k in range(repeats):
        before = cell.evaluate(STATE)
        cell.locator(".widget-toggle-buttons button", has_text=["wrong", "right", "all"][k % 3]).first.click()
        figures["filter_seconds"].append(_answered(page, cell, """(now, b) => now.faded[0] !== b.faded[0] &&
            now.faded.every(n => n === now.faded[0])""", before))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--skip-live", action="store_true", help="leave out the live view's cost (a whole run again)")
    parser.add_argument("--compare-with", default=None, help="a second run for the comparison page's time (default: the run alone)")
    parser.add_argument("--browser", action="store_true", help="measure in chromium driving JupyterLab (see above)")
    parser.add_argument("--points", type=int, default=20_000, help="with --browser: samples on the maps timed")
    parser.add_argument("--opens", type=int, default=3, help="with --browser: how many times the run is opened")
    parser.add_argument("--repeats", type=int, default=3, help="with --browser: how many clicks, boxes and filters")
    parser.add_argument("--screenshot", type=Path, default=None, help="with --browser: the page as it ends, here")
    args = parser.parse_args(argv)
    from augkd.runs import resolve_run
    run_dir = str(resolve_run(args.run_dir))
    from augkd.precision import machine_name
    machine = machine_name()
    if args.browser:
        from augkd.widgets import workbench
        workbench(run_dir)  # the run's map stored (fitted here if it is not yet), as a report leaves it
        figures = {**browser_figures(run_dir, args.points, args.opens, args.repeats, args.screenshot),
                   "machine": machine, "date": time.strftime("%Y-%m-%d"), "options": vars(args) | {"json": str(args.json),
                   "screenshot": str(args.screenshot)}, "stored_maps": sorted(p.name for p in (Path(run_dir) / "viz").glob("map-*.npz"))}
        print(json.dumps(figures, indent=2))
        if args.json: args.json.write_text(json.dumps(figures, indent=2) + "\n")
        if "failed" in figures: sys.exit(f"stopped early ({figures['failed']}); the figures before it are above")
        return figures
    stored = sorted(p.name for p in (Path(run_dir) / "viz").glob("map-*.npz"))
    figures = {"run": run_dir, "machine": machine,
               "stored_maps": stored, "open": [open_seconds(run_dir) for _ in range(3)]}
    from augkd.compare import write_comparison
    from augkd.report import write_report
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter(); write_report(run_dir, Path(tmp) / "report.html"); figures["report_seconds"] = time.perf_counter() - start
        start = time.perf_counter(); write_comparison([run_dir, args.compare_with or run_dir], Path(tmp)); figures["compare_seconds"] = time.perf_counter() - start
    if not args.skip_live: figures["live"] = live_cost(run_dir)
    print(json.dumps(figures, indent=2))
    if args.json: args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
