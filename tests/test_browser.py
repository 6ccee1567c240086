"""The workbench in a real browser: JupyterLab runs the mixup explorer and its slider moves the strip's frame
and the path marker; a report.html renders every plot with no network request.

Needs Debian's `chromium` and the `playwright` package (`.ci/run` installs both). Without them the tests
skip, unless AUGKD_BROWSER_TESTS=required (as in CI), where a missing browser is a failure."""
import contextlib, os, re, secrets, shutil, socket, subprocess, sys, time
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
def _lab(tmp_path, notebook: str):
    "JupyterLab on 127.0.0.1 with a token, serving a copy of `notebook` from nbs/; yields its URL."
    from augkd.widgets import quick_run_dir
    quick_run_dir()  # the run the notebook opens, made here so the browser waits only for the notebook itself
    served = tmp_path / "lab"
    served.mkdir()
    shutil.copy(ROOT / "nbs" / notebook, served / "explorer.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={served}", "--ServerApp.open_browser=False", "--allow-root"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "jupyterlab.log", "w"), env=os.environ.copy())
    try:
        deadline = time.time() + 60
        while time.time() < deadline and server.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0: break
            time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start: " + (tmp_path / "jupyterlab.log").read_text()[-2000:])
        yield f"http://127.0.0.1:{port}/lab/tree/explorer.ipynb?token={token}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def jupyterlab(tmp_path):
    "The mixup explorer's notebook in JupyterLab."
    with _lab(tmp_path, "22_explore_mixup.ipynb") as url: yield url


@pytest.fixture
def anchors_lab(tmp_path):
    "The anchor explorer's notebook in JupyterLab."
    with _lab(tmp_path, "21_explore_anchors.ipynb") as url: yield url


def _run_all(browser, url):
    "A page with the notebook at `url` run to its last cell."
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
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


def _strip_and_marker(page):
    "The framed caption of the strip and the position of the map's current-s marker."
    frame = page.locator(".js-plotly-plot .annotation-text", has_text=re.compile(r"^> s=")).first.text_content()
    marker = page.locator(".js-plotly-plot").nth(1).locator(".scatterlayer .trace").last.locator(".point").first
    return frame, marker.get_attribute("transform")


def test_mixup_explorer_in_jupyterlab(browser, jupyterlab, tmp_path):
    page = _run_all(browser, jupyterlab)
    s_slider = page.locator(".widget-hslider", has=page.locator(".widget-label", has_text=re.compile(r"^s$")))
    s_slider.wait_for()
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 2")
    before = _strip_and_marker(page)

    handle = s_slider.locator(".noUi-handle")
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] - 400, box["y"] + box["height"] / 2, steps=10)  # all the way to s = 0
    page.mouse.up()
    page.wait_for_function(
        "([frame]) => [...document.querySelectorAll('.js-plotly-plot .annotation-text')].some("
        "a => a.textContent.startsWith('> s=') && a.textContent !== frame)", arg=[before[0]])
    page.wait_for_timeout(500)
    after = _strip_and_marker(page)
    page.screenshot(path=str(_screenshot_dir(tmp_path) / "explore_mixup.png"), full_page=True)
    assert after[0] == "> s=0.00" and before[0] != after[0], (before, after)
    assert after[1] != before[1], "the path marker did not move"


# the point of a visible trace with samples farthest from every other such point, and where it lies on the page
# (plotly's own axes map its data to pixels): a click on a point that others overlap may land on one of those
_POINT = """(gd) => {
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
    const points = gd._fullData.filter(t => t.visible === true && t.customdata).flatMap(t => t.customdata.map((c, k) => ({
        x: box.left + xa._offset + xa.l2p(t.x[k]), y: box.top + ya._offset + ya.l2p(t.y[k]), sample: Number(c)})));
    const room = p => Math.min(...points.filter(q => q !== p).map(q => Math.hypot(p.x - q.x, p.y - q.y)));
    return points.reduce((best, p) => room(p) > room(best) ? p : best);
}"""


def test_clicking_the_anchor_map_shows_that_sample(browser, anchors_lab, tmp_path):
    page = _run_all(browser, anchors_lab)
    caption = page.locator(".widget-label", has_text=re.compile(r"^sample \d+, class"))
    caption.first.wait_for()
    plot = page.locator(".js-plotly-plot").first
    plot.scroll_into_view_if_needed()
    point = plot.evaluate(_POINT)
    # as a hand does: onto the point, a pause, a click (plotly throttles hover to one per 50 ms and takes a click only
    # on a point it has hovered, so a pointer that jumps and clicks at once selects nothing)
    page.mouse.move(point["x"] - 40, point["y"] - 40)
    page.mouse.move(point["x"], point["y"], steps=5)
    page.wait_for_timeout(300)
    page.mouse.click(point["x"], point["y"])
    page.wait_for_function("(s) => [...document.querySelectorAll('.widget-label')].some(l => l.textContent.startsWith(s))",
                           arg=f"sample {point['sample']}, class")
    page.screenshot(path=str(_screenshot_dir(tmp_path) / "explore_anchors.png"), full_page=True)
    assert page.get_by_text("x | G(E(x, y)) | x_a").count() == 1
    assert "on G(E(x, y))" in caption.first.text_content()


def test_report_renders_offline(browser, cli, tmp_path):
    done = cli("run", *QUICK, "--report", "true", "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((tmp_path / "run" / "report.html").as_uri())
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 9")
    page.screenshot(path=str(_screenshot_dir(tmp_path) / "report.png"), full_page=True)
    assert page.locator(".js-plotly-plot").count() == 9
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
