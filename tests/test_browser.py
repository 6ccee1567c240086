"""The workbench in a real browser: JupyterLab opens a run by the same relative path from `nbs/` and from the
project root without editing the notebook, a click on the anchor map selects the sample in every linked view and
survives a hover, which shows the image under the cursor; a box and a lasso select samples shown in every map, a
filter fades them in every map; choosing a run in the dropdown opens it, and two runs side by side share one
selection; the mixup slider moves the strip's frame and the path marker, a live view updates while a run trains,
report.html and the comparison page render every plot with no network request, and the benchmark of the workbench
in the browser (scripts/workbench_bench.py --browser) runs at a tiny size.

Needs Debian's `chromium` and the `playwright` package (`.ci/run` installs both). Without them the tests
skip, unless AUGKD_BROWSER_TESTS=required (as in CI), where a missing browser is a failure."""
import contextlib, json, os, re, secrets, shutil, socket, subprocess, sys, time
from pathlib import Path

import pytest

from conftest import ROOT, QUICK

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def _need_browser():
    missing = []
    try: import playwright.sync_api  # noqa: F401
    except ImportError: missing.append("the playwright package")
    if not Path(CHROMIUM).exists(): missing.append("chromium")
    if missing:
        message = f"browser tests need {' and '.join(missing)} (.ci/run installs them)"
        if os.environ.get("AUGKD_BROWSER_TESTS") == "required": pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def _screenshot_dir(tmp_path):
    folder = Path(os.environ.get("AUGKD_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _lab(tmp_path, root: Path):
    "JupyterLab on 127.0.0.1 with a token, serving the folder `root`; yields a function from a notebook's path to its URL."
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp_path / "jupyterlab.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False", "--allow-root"],
        stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=os.environ.copy())
    try:
        deadline = time.time() + 60
        while time.time() < deadline and server.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0: break
            time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start: " + log.read_text()[-2000:])
        # each notebook in a workspace of its own: JupyterLab would otherwise reopen the tabs of the last page
        yield lambda notebook: f"http://127.0.0.1:{port}/lab/workspaces/{secrets.token_hex(4)}/tree/{notebook}?token={token}&reset"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def project(tmp_path):
    """A project as a researcher has it: settings.ini at its root, two finished runs in runs/ (copies of the cached quick
    run; runs/quick-b the newer), and the workbench notebook both in nbs/ and at the root."""
    from augkd.widgets import quick_run_dir
    quick = quick_run_dir()  # made here so the browser waits only for the notebook itself
    root = tmp_path / "project"
    (root / "nbs").mkdir(parents=True)
    (root / "settings.ini").write_text("[DEFAULT]\n")
    for name in ("quick-a", "quick-b"):
        shutil.copytree(quick, root / "runs" / name, ignore=shutil.ignore_patterns(".lock"))
        time.sleep(0.05)
        (root / "runs" / name / "results.json").touch()
    for where in (root / "nbs", root):
        shutil.copy(ROOT / "nbs" / "21_workbench.ipynb", where / "21_workbench.ipynb")
    return root


def _sources(path: Path) -> list:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"]]


def _run_all(page, url):
    "The notebook at `url` run to its last cell in `page`."
    page.set_default_timeout(300_000)
    page.goto(url)
    page.locator(".jp-Notebook").wait_for()
    page.get_by_text("| Idle").wait_for()  # run-all before the kernel is up runs nothing
    page.locator("li.lm-MenuBar-item", has_text="Run").first.click()
    page.locator("li.lm-Menu-item[data-command='runmenu:run-all']").click()
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 1")
    last_prompt = page.locator(".jp-CodeCell .jp-InputPrompt").last
    page.wait_for_function("(p) => /\\[\\d+\\]/.test(p.textContent)", arg=last_prompt.element_handle())
    page.wait_for_timeout(1000)
    return page


def _header(page) -> str:
    return page.locator(".widget-html", has_text=re.compile(r"^run /")).first.text_content()


def test_a_run_opens_by_the_same_relative_path_from_nbs_and_from_the_root(browser, project, tmp_path):
    before = {where: _sources(where / "21_workbench.ipynb") for where in (project / "nbs", project)}
    with _lab(tmp_path, project) as url:
        for notebook in ("nbs/21_workbench.ipynb", "21_workbench.ipynb"):
            page = _run_all(browser.new_page(viewport={"width": 1400, "height": 1600}), url(notebook))
            assert f"run {project / 'runs' / 'quick-b'}" in _header(page)  # unasked: the newest finished run
            page.locator("input[placeholder^='or a path']").fill("runs/quick-a")
            page.get_by_role("button", name="open", exact=True).click()
            page.wait_for_function("(r) => [...document.querySelectorAll('.widget-html')].some(h => h.textContent.startsWith(r))",
                                   arg=f"run {project / 'runs' / 'quick-a'}:")
            page.keyboard.press("Control+s")  # even saved, opening a run leaves the notebook's source as it was
            page.wait_for_timeout(1500)
            page.screenshot(path=str(_screenshot_dir(tmp_path) / f"workbench-{notebook.replace('/', '-')}.png"), full_page=True)
            page.close()
    for where, sources in before.items(): assert _sources(where / "21_workbench.ipynb") == sources


_SAMPLE_POINTS = """(gd, axis) => {
    axis = axis || '';  // playwright hands a missing argument over as null
    const xa = gd._fullLayout['xaxis' + axis], ya = gd._fullLayout['yaxis' + axis], box = gd.getBoundingClientRect();
    return gd._fullData.filter(t => t.visible === true && t.meta === 'samples' && t.xaxis === 'x' + axis).flatMap(
        t => Array.from(t.customdata).map((c, k) => ({x: box.left + xa._offset + xa.l2p(t.x[k]),
                                                      y: box.top + ya._offset + ya.l2p(t.y[k]), sample: Number(c)})));
}"""

# the point of a visible trace of samples farthest from every other such point, and where it lies on the page
# (plotly's own axes map its data to pixels): a click on a point that others overlap may land on one of those
_POINTS = """(gd, axis) => {
    const points = (""" + _SAMPLE_POINTS + """)(gd, axis);
    const room = p => Math.min(...points.filter(q => q !== p).map(q => Math.hypot(p.x - q.x, p.y - q.y)));
    const ranked = points.map(p => [room(p), p]).sort((a, b) => b[0] - a[0]).map(a => a[1]);
    return [ranked[0], ranked.find(p => p.sample !== ranked[0].sample)];
}"""


def _widget_text_starts(page, text: str, count: int = 1):
    page.wait_for_function("([t, n]) => [...document.querySelectorAll('.widget-label, .widget-html')].filter("
                           "l => l.textContent.startsWith(t)).length >= n", arg=[text, count])


def test_a_click_selects_the_sample_in_every_view_and_survives_a_hover(browser, project, tmp_path):
    with _lab(tmp_path, project) as url:
        page = _run_all(browser.new_page(viewport={"width": 1400, "height": 1800}), url("21_workbench.ipynb"))
        plot = page.locator(".js-plotly-plot").first
        plot.scroll_into_view_if_needed()
        point, other = plot.evaluate(_POINTS)
        # as a hand does: onto the point, a pause, a click (plotly takes a click only on a point it has hovered)
        page.mouse.move(point["x"] - 40, point["y"] - 40)
        page.mouse.move(point["x"], point["y"], steps=5)
        page.wait_for_timeout(300)
        page.mouse.click(point["x"], point["y"])
        chosen = f"sample {point['sample']}, class"
        _widget_text_starts(page, chosen, 2)  # the sample's caption and the mixup view's label
        hover_image = page.locator(".widget-image").nth(1)  # the sample in focus, then the image under the cursor
        before = hover_image.get_attribute("src")
        page.mouse.move(other["x"], other["y"], steps=5)  # then a hover on another point, and a rest there
        _widget_text_starts(page, f"sample {other['sample']} (")  # the image under the cursor, captioned
        page.wait_for_timeout(800)
        assert hover_image.get_attribute("src") != before, "the hovered point's image is shown"
        captions = page.locator(".widget-label, .widget-html", has_text=re.compile(r"^sample \d+, class")).all_text_contents()
        assert len(captions) == 2 and all(c.startswith(chosen) for c in captions), captions
        assert f"Selected: {chosen}" in page.locator(".widget-html", has_text="Selected:").first.text_content()

        # the mixup view's s slider: all the way to s = 0 moves the strip's frame (a picture) and the path marker
        s_slider = page.locator(".widget-hslider", has=page.locator(".widget-label", has_text=re.compile(r"^s$")))
        s_slider.scroll_into_view_if_needed()
        shown = lambda: page.locator(".widget-label", has_text=re.compile(r"shown s = ")).first.text_content()
        strip = page.locator(".widget-image").nth(2)
        before, picture = shown(), strip.get_attribute("src")
        handle = s_slider.locator(".noUi-handle")
        box = handle.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] - 600, box["y"] + box["height"] / 2, steps=10)
        page.mouse.up()
        page.wait_for_function("() => [...document.querySelectorAll('.widget-label')].some(l => l.textContent.endsWith('shown s = 0.00'))")
        page.screenshot(path=str(_screenshot_dir(tmp_path) / "workbench_selected.png"), full_page=True)
        assert shown().endswith("shown s = 0.00") and before != shown() and strip.get_attribute("src") != picture


# per map on the page (anchor map, mixup map, uncertainty map): the samples its sample traces show selected
# (`selectedpoints`), and those it fades (a per-point opacity of 0.1, `augkd.selection.FADED`)
_MAP_STATE = """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => {
    const traces = gd.data.filter(t => t.meta === 'samples'), of = (t, k) => Number(Array.from(t.customdata)[k]);
    const selected = new Set(traces.flatMap(t => Array.from(t.selectedpoints || []).map(k => of(t, k))));
    const faded = new Set(traces.flatMap(t => Array.isArray(t.marker.opacity) || ArrayBuffer.isView(t.marker.opacity) ?
        Array.from(t.marker.opacity).flatMap((o, k) => o < 0.2 ? [of(t, k)] : []) : []));
    return {selected: [...selected].sort((a, b) => a - b), faded: [...faded].sort((a, b) => a - b), traces: traces.length};
})"""


def _count_line(page) -> str:
    return page.locator(".widget-html", has_text=re.compile(r"(samples selected|one sample in focus)")).first.text_content()


def _drag(page, path: list):
    "As a hand drags: onto the first point of `path`, a pause, pressed, through the others, released at the last."
    page.mouse.move(*path[0], steps=5)
    page.wait_for_timeout(200)
    page.mouse.down()
    page.wait_for_timeout(100)
    for x, y in path[1:]: page.mouse.move(x, y, steps=8)
    page.wait_for_timeout(100)
    page.mouse.up()


def _tool(page, plot, title: str, dragmode: str):
    "Choose a tool of a plot's toolbar (plotly's modebar shows it on hover), and wait until the plot drags with it."
    plot.hover()
    plot.locator(f".modebar-btn[data-title='{title}']").click()
    page.wait_for_function("([gd, mode]) => gd._fullLayout.dragmode === mode", arg=[plot.element_handle(), dragmode])
    page.wait_for_timeout(500)


def _line_changes(page, before: str):
    "Wait until the selection's line says something else than `before`; return it."
    page.wait_for_function("(b) => { const h = [...document.querySelectorAll('.widget-html')].find("
                           "h => / samples selected|one sample in focus/.test(h.textContent)); return h && h.textContent !== b }",
                           arg=before)
    page.wait_for_timeout(1500)  # the maps' restyle follows the line
    return _count_line(page)


def test_a_box_and_a_lasso_select_samples_in_every_view_and_a_filter_fades_them(browser, project, tmp_path):
    with _lab(tmp_path, project) as url:
        page = _run_all(browser.new_page(viewport={"width": 1280, "height": 1600}), url("21_workbench.ipynb"))
        page.set_default_timeout(60_000)  # the notebook has run: every step after answers in seconds
        plot = page.locator(".js-plotly-plot").first
        plot.scroll_into_view_if_needed()
        points = plot.evaluate(f"(gd) => ({_SAMPLE_POINTS})(gd, '')")
        xs, ys = sorted(p["x"] for p in points), sorted(p["y"] for p in points)
        between = lambda values, k: (values[k] + values[k + 1]) / 2  # a box edge between two points, on neither
        x0, x1, y0, y1 = (between(xs, len(xs) // 5), between(xs, 4 * len(xs) // 5), between(ys, len(ys) // 5),
                          between(ys, 4 * len(ys) // 5))
        if y1 - y0 < 40: y0, y1 = y0 - 20, y1 + 20  # a box too thin to drag is a click to plotly
        inside = {p["sample"] for p in points if x0 <= p["x"] <= x1 and y0 <= p["y"] <= y1}
        line = _count_line(page)
        _tool(page, plot, "Box Select", "select")
        _drag(page, [(x0, y0), (x1, y1)])
        line = _line_changes(page, line)
        maps = page.evaluate(_MAP_STATE)
        assert len(maps) == 3 and all(m["traces"] for m in maps), maps
        chosen = maps[0]["selected"]
        assert len(set(chosen) ^ inside) <= 2 and line.startswith(f"{len(chosen)} samples selected"), (chosen, inside, line)
        assert all(m["selected"] == chosen for m in maps), "the box's samples are selected in every map"
        page.screenshot(path=str(_screenshot_dir(tmp_path) / "workbench_box.png"), full_page=True)

        _tool(page, plot, "Lasso Select", "lasso")
        start = (x0 - 30, y0 - 30)  # outside the box: a drag that starts on a selection moves it
        _drag(page, [start, (x1, (y0 + y1) / 2), ((x0 + x1) / 2, y1 + 30), start])  # a triangle across the box
        line = _line_changes(page, line)
        maps = page.evaluate(_MAP_STATE)
        lassoed = maps[0]["selected"]
        assert lassoed and lassoed != chosen and all(m["selected"] == lassoed for m in maps), maps
        assert line.startswith(f"{len(lassoed)} samples selected" if len(lassoed) > 1 else "one sample in focus"), line

        page.locator(".widget-toggle-buttons button", has_text="wrong").first.click()  # the teacher filter
        line = _line_changes(page, line)
        maps = page.evaluate(_MAP_STATE)
        page.screenshot(path=str(_screenshot_dir(tmp_path) / "workbench_filtered.png"), full_page=True)
        kept = int(re.search(r"the filters keep (\d+) of 70 samples", line).group(1))
        assert maps[0]["faded"] and all(m["faded"] == maps[0]["faded"] for m in maps), "faded alike in every map"
        assert len(maps[0]["faded"]) + kept == 70, (len(maps[0]["faded"]), kept)


def test_the_dropdown_opens_the_run_it_names_and_two_runs_share_one_selection(browser, project, tmp_path):
    with _lab(tmp_path, project) as url:
        page = _run_all(browser.new_page(viewport={"width": 1280, "height": 1600}), url("21_workbench.ipynb"))
        page.set_default_timeout(60_000)
        assert f"run {project / 'runs' / 'quick-b'}" in _header(page)
        menu = lambda label: page.locator(".widget-dropdown", has=page.locator("label", has_text=label)).locator("select")
        pick = lambda label, run: menu(label).select_option(  # the option naming the run, as the picker labels it
            label=next(t for t in menu(label).locator("option").all_text_contents() if t.replace("\xa0", " ").startswith(f"{run} (")))
        pick("run", "quick-a")  # no open button: choosing opens
        page.wait_for_function("(r) => [...document.querySelectorAll('.widget-html')].some(h => h.textContent.startsWith(r))",
                               arg=f"run {project / 'runs' / 'quick-a'}:")
        pick("beside it", "quick-b")  # two runs, side by side
        _widget_text_starts(page, "quick-b: x | G(E(x, y))")
        page.wait_for_function("() => [...document.querySelectorAll('.widget-html')].some(h => h.textContent.includes('their calls differ on'))")
        page.wait_for_timeout(1500)
        plot = page.locator(".js-plotly-plot").first
        plot.scroll_into_view_if_needed()
        point, _ = plot.evaluate(f"(gd) => ({_POINTS})(gd, '2')")  # a sample on the second run's map
        page.mouse.move(point["x"] - 40, point["y"] - 40)
        page.mouse.move(point["x"], point["y"], steps=5)
        page.wait_for_timeout(300)
        assert point["x"] < 1280, "the second run's map is inside the window"
        page.mouse.click(point["x"], point["y"])
        _widget_text_starts(page, f"sample {point['sample']}, class", 2)  # both runs' samples in focus
        rings = plot.evaluate("(gd) => gd.data.filter(t => (t.name || '').startsWith('selected sample')).map(t => t.xaxis)")
        assert rings == ["x", "x2"], rings
        page.screenshot(path=str(_screenshot_dir(tmp_path) / "workbench_pair.png"), full_page=True)


def test_a_live_view_updates_while_a_run_trains(browser, tmp_path):
    served = tmp_path / "lab"
    served.mkdir()
    code = ('from augkd.live import live_run\nfrom augkd.pipeline import make_config\n'
            'results = live_run(make_config("quick", mixup_epochs=60), "run", refresh=0)')
    notebook = {"cells": [{"cell_type": "code", "execution_count": None, "id": "live", "metadata": {}, "outputs": [],
                           "source": code}], "metadata": {"kernelspec": {"display_name": "python3", "language": "python",
                                                                        "name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}
    (served / "live.ipynb").write_text(json.dumps(notebook))
    with _lab(tmp_path, served) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.set_default_timeout(300_000)
        page.goto(url("live.ipynb"))
        page.get_by_text("| Idle").wait_for()
        page.locator(".jp-CodeCell .jp-InputArea-editor").first.click()
        page.keyboard.press("Shift+Enter")
        progress = re.compile(r"stage 3 \(mixup\): (\d+) of 60 epochs done")
        seen = []
        deadline = time.time() + 240
        while time.time() < deadline and len(set(seen)) < 3:
            lines = page.locator(".widget-html", has_text=progress).all_text_contents()
            running = "[*]" in page.locator(".jp-CodeCell .jp-InputPrompt").first.text_content()
            if lines and running: seen.append(int(progress.search(lines[0]).group(1)))
            page.wait_for_timeout(150)
        points = page.locator(".js-plotly-plot").first.locator(".scatterlayer .trace").first.locator(".point").count()
        page.screenshot(path=str(_screenshot_dir(tmp_path) / "live_view.png"), full_page=True)
        assert len(set(seen)) >= 3 and seen == sorted(seen), seen  # the line moved on, epoch by epoch, while the cell ran
        assert points >= 1
        page.wait_for_function("[...document.querySelectorAll('.widget-html')].some(h => h.textContent.startsWith('finished'))")
        assert page.locator(".js-plotly-plot").count() >= 1 + 3  # the curves, and each finished stage's pictures


def _renders_offline(browser, page_path: Path, plots: int, tmp_path, shot: str):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_path.as_uri())
    page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {plots}")
    page.screenshot(path=str(_screenshot_dir(tmp_path) / shot), full_page=True)
    assert page.locator(".js-plotly-plot").count() == plots
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    return page


def test_report_renders_offline(browser, cli, tmp_path):
    done = cli("run", *QUICK, "--report", "true", "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    page = _renders_offline(browser, tmp_path / "run" / "report.html", 14, tmp_path, "report.png")
    assert page.locator("pre").first.text_content().startswith("augkd run --preset quick")  # the command comes first
    assert "true " in page.content() and "what it measures" in page.content()


def test_comparison_page_renders_offline(browser, cli, tmp_path):
    for name, extra in (("augkd", []), ("no-anchor", ["--use-anchor", "false"])):
        done = cli("run", *QUICK, *extra, "--out", tmp_path / name)
        assert done.returncode == 0, done.stderr
    done = cli("compare", tmp_path / "augkd", tmp_path / "no-anchor", "--out", tmp_path / "cmp")
    assert done.returncode == 0, done.stderr
    page = _renders_offline(browser, tmp_path / "cmp" / "compare.html", 1 + 2 + 1 + 2 + 2 + 2, tmp_path, "compare.png")
    assert page.locator("h2", has_text="Confusion matrices").count() == 1


def test_the_browser_benchmark_runs_at_a_tiny_size(tmp_path):
    _need_browser()
    sys.path.insert(0, str(ROOT / "scripts"))
    import workbench_bench
    from augkd.widgets import quick_run_dir
    out = tmp_path / "workbench_browser.json"
    workbench_bench.main([str(quick_run_dir()), "--browser", "--points", "300", "--opens", "1", "--repeats", "2",
                          "--json", str(out), "--screenshot", str(_screenshot_dir(tmp_path) / "workbench_bench.png")])
    figures = json.loads(out.read_text())
    assert figures["points"] == 300 and figures["browser"].startswith("chromium") and figures["open_seconds_at_scale"] > 0
    for key, count in (("open_seconds", 1), ("click_seconds", 2), ("box_seconds", 2), ("filter_seconds", 2)):
        assert len(figures[key]) == count and all(0 < s < 120 for s in figures[key]), (key, figures[key])
