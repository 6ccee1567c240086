"""On shared machines and clusters: a complete cache on a read-only filesystem, numba without a writable cache, a
picture that cannot be made, several launchers on one grid, variables and ports left over, ranks that fail or are
signalled, threads from the cores that are free, a cluster job out of time, and the last image modes and checkpoints.
Each case on a small input made here; the read-only places are real read-only mounts (`unshare --mount`) where this
machine allows them."""
import html, importlib.util, json, os, shlex, shutil, signal, socket, subprocess, sys, time
from pathlib import Path

import pytest

from conftest import QUICK


def here(**more) -> dict:
    "This process's environment (the tests' cache included: conftest sets it once the session starts), one thread, and `more`."
    return {**os.environ, "OMP_NUM_THREADS": "1", **more}


def _mounts_work() -> bool:
    "Whether this process may make a private mount namespace and bind a folder read-only in it (root in a container may)."
    try:
        done = subprocess.run(["unshare", "--mount", "sh", "-c", "mount --bind /tmp /tmp && mount -o remount,ro,bind /tmp && "
                               "! touch /tmp/.augkd-ro-probe 2>/dev/null"], capture_output=True, timeout=30)
        return done.returncode == 0
    except (OSError, subprocess.TimeoutExpired): return False


read_only_mounts = pytest.mark.skipif(not _mounts_work(), reason="no private mount namespace here (unshare --mount)")


def read_only(paths, command, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    "Run `command` with each of `paths` bound read-only onto itself, in a mount namespace of its own (the rest unchanged)."
    binds = "".join(f"mount --bind {shlex.quote(str(p))} {shlex.quote(str(p))} && "
                    f"mount -o remount,ro,bind {shlex.quote(str(p))} && " for p in paths)
    return subprocess.run(["unshare", "--mount", "sh", "-c", binds + 'exec "$@"', "sh", *map(str, command)], capture_output=True,
                          text=True, env=env or here(), cwd=cwd, timeout=timeout)


def _fill_cache():
    "The quick preset's DigitShift and teacher in the tests' cache, built here if missing."
    from augkd.devices import resolve_device
    from augkd.pipeline import config_splits, resolve_teacher
    from augkd.stages import make_config
    config = make_config("quick")
    resolve_teacher(config, config_splits(config), resolve_device(config.device))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, augkd_cache):
    "A finished quick run, without its report."
    run = tmp_path_factory.mktemp("finished") / "run"
    done = subprocess.run(["augkd", "run", *QUICK, "--out", str(run)], capture_output=True, text=True, env=here())
    assert done.returncode == 0, done.stderr[-3000:]
    return run


# -- read-only places -----------------------------------------------------------------------------------------------

@read_only_mounts
def test_a_complete_cache_on_a_read_only_filesystem_is_used_as_it_is(tmp_path, augkd_cache):
    _fill_cache()
    done = read_only([augkd_cache], ["augkd", "run", *QUICK, "--out", tmp_path / "run"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["student"]["acc"] > 0
    missing = read_only([augkd_cache], ["augkd", "run", *QUICK, "--teacher-epochs", "2", "--out", tmp_path / "other"])
    lines = [l for l in missing.stderr.splitlines() if "error" in l]  # an entry not there yet: it must be written, and cannot
    assert missing.returncode == 2 and len(lines) == 1 and "Traceback" not in missing.stderr, missing.stderr[-3000:]
    assert "Read-only file system" in lines[0] and "set AUGKD_CACHE to a folder you may write to" in lines[0]


@read_only_mounts
def test_a_read_only_home_without_augkd_cache_names_the_variable(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in here().items() if k not in ("AUGKD_CACHE", "XDG_CACHE_HOME")}
    done = read_only([home], ["augkd", "run", *QUICK, "--out", tmp_path / "run"], env={**env, "HOME": str(home)})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert f"cannot write {home}/.cache/augkd: Read-only file system; set AUGKD_CACHE to a folder" in done.stderr


# -- no finished work lost to a picture ---------------------------------------------------------------------------------

def _site_folders() -> list:
    "The folders numba caches UMAP's compiled code beside when nothing else is set: the packages' own."
    return sorted({str(Path(importlib.util.find_spec(p).origin).parent.parent) for p in ("umap", "pynndescent")})


@read_only_mounts
def test_umap_compiles_with_home_and_site_packages_read_only(tmp_path, finished_run):
    "numba's own places are all read-only and NUMBA_CACHE_DIR is unset: augkd points numba at its cache, the map is UMAP's."
    home = tmp_path / "home"
    home.mkdir()
    env = {**{k: v for k, v in here().items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}, "HOME": str(home),
           "AUGKD_REDUCER": "umap"}
    done = read_only([home, *_site_folders()], ["augkd", "report", finished_run, "--out", tmp_path / "report.html"], env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    page = (tmp_path / "report.html").read_text()
    assert "the maps are PCA" not in page and "UMAP 1" in page and "report:" not in done.stdout, done.stdout
    assert list((Path(env["AUGKD_CACHE"]) / "numba").rglob("*.nbi")), "numba's index files in augkd's cache"


UNUSABLE_UMAP = "raise RuntimeError(\"cannot cache function 'rdist': no locator available for file '/site/umap/layouts.py'\")\n"


def test_a_run_and_its_report_outlive_a_reducer_that_cannot_be_made(tmp_path, finished_run):
    "UMAP that cannot be imported (as numba fails without a writable cache): the run keeps its results, the maps are PCA, one line says why."
    (tmp_path / "fake" / "umap").mkdir(parents=True)
    (tmp_path / "fake" / "umap" / "__init__.py").write_text(UNUSABLE_UMAP)
    env = here(AUGKD_REDUCER="umap", PYTHONPATH=os.pathsep.join([str(tmp_path / "fake"), os.environ.get("PYTHONPATH", "")]))
    run = shutil.copytree(finished_run, tmp_path / "finished", ignore=shutil.ignore_patterns("viz"))  # no map fitted yet
    report = subprocess.run(["augkd", "report", run, "--out", tmp_path / "report.html"], capture_output=True, text=True, env=env)
    assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr[-3000:]
    said = "the maps are PCA: UMAP could not be used (RuntimeError: cannot cache function 'rdist'"
    assert f"report: {said}" in report.stdout
    page = (tmp_path / "report.html").read_text()
    assert html.escape(said) in page and page.count("Plotly.newPlot") == 14  # every picture, the maps with PCA
    done = subprocess.run(["augkd", "run", *QUICK[:-2], "--out", tmp_path / "run"], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert (tmp_path / "run" / "results.json").exists() and html.escape(said) in (tmp_path / "run" / "report.html").read_text()


def test_a_run_whose_report_fails_whole_keeps_its_results(tmp_path, monkeypatch):
    "Whatever stops the report, a finished run exits 0 with its results and checkpoints, and one line on how to try again."
    import augkd.report
    from conftest import in_process
    def broken(*args, **kwargs): raise RuntimeError("no browser here\nand more")
    monkeypatch.setattr(augkd.report, "write_report", broken)
    code, err = in_process("run", *QUICK[:-2], "--out", tmp_path / "run")
    assert code == 0, err[-3000:]
    assert (tmp_path / "run" / "results.json").exists() and (tmp_path / "run" / "ckpt" / "mixup.pt").exists()
    line = [l for l in err.splitlines() if "report could not be written" in l]
    assert len(line) == 1 and "(RuntimeError: no browser here)" in line[0] and f"augkd report {tmp_path / 'run'}" in line[0]


# -- several launchers share a grid -------------------------------------------------------------------------------------

SLOW = '''
import os, time
from pathlib import Path
from augkd.methods import register

@register("slow", "notes each computation; seed 0 waits for the test's word")
def slow(cell):
    log = Path(os.environ["AUGKD_TEST_LOG"])
    with open(log, "a") as f: f.write(f"{cell.config.seed} {os.getpid()}\\n")
    while cell.config.seed == 0 and not log.with_suffix(".go").exists(): time.sleep(0.1)
    time.sleep(0.5)
    return {"acc": 0.5 + cell.config.seed / 100, "acc3": 0.8, "acc5": 0.9}
'''


def test_two_launchers_on_one_grid_share_it(tmp_path, augkd_cache):
    "The second launcher leaves the cell the first is writing to it, runs the free ones, waits for the rest: both exit 0 with every row."
    _fill_cache()
    (tmp_path / "slow.py").write_text(SLOW)
    log = tmp_path / "cells.log"
    env = here(AUGKD_TEST_LOG=str(log))
    grid = ["augkd", "bench", "--plugin", "slow.py", "--methods", "slow", "--preset", "quick", "--settings", "HP-M",
            "--seeds", "0,1,2,3", "--shots", "5", "--out", "bench"]
    outs = [open(tmp_path / f"launcher{i}.txt", "w") for i in (1, 2)]
    first = subprocess.Popen(grid, stdout=outs[0], stderr=subprocess.STDOUT, env=env, cwd=tmp_path, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (log.exists() and log.read_text().startswith("0 ")): time.sleep(0.1)
    second = subprocess.Popen(grid, stdout=outs[1], stderr=subprocess.STDOUT, env=env, cwd=tmp_path, text=True)
    said = lambda i: (tmp_path / f"launcher{i}.txt").read_text()
    while time.time() < deadline and "slow HP-M 5-shot seed 0: another process is writing it" not in said(2): time.sleep(0.1)
    while time.time() < deadline and len(log.read_text().splitlines()) < 4: time.sleep(0.1)  # the free cells, by the second
    log.with_suffix(".go").touch()
    assert first.wait(300) == 0 and second.wait(300) == 0, said(1)[-3000:] + said(2)[-3000:]
    computed = [line.split() for line in log.read_text().splitlines()]
    assert sorted(seed for seed, _ in computed) == ["0", "1", "2", "3"], computed  # each cell once
    assert {pid for seed, pid in computed if seed == "0"} != {pid for seed, pid in computed if seed != "0"}  # by both launchers
    rows = json.loads((tmp_path / "bench" / "bench.json").read_text())["cells"]
    assert [(r["seed"], r["acc"]) for r in rows] == [(0, 0.5), (1, 0.51), (2, 0.52), (3, 0.53)]
    for i in (1, 2): assert "wrote bench/bench.json" in said(i)
