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
    from augkd.data import config_splits
    from augkd.teacher import resolve_teacher
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
    """UMAP that cannot be imported (as numba fails without a writable cache): the run keeps its results, the maps are PCA,
    one line says why."""
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
    """The second launcher leaves the cell the first is writing to it, runs the free ones, waits for the rest: both exit 0
    with every row."""
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


# -- processes that end together ------------------------------------------------------------------------------------------

LONGER = QUICK + ["--anchor-epochs", "4", "--mixup-epochs", "40"]  # long enough to be signalled inside


def _until(condition, seconds=300):
    deadline = time.time() + seconds
    while time.time() < deadline and not condition(): time.sleep(0.1)
    return condition()


def _uncached_teacher(tmp_path) -> Path:
    "A cache holding the tests' DigitShift and no teacher."
    _fill_cache()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "digitshift-v1.pt").symlink_to(Path(os.environ["AUGKD_CACHE"]) / "digitshift-v1.pt")
    return cache


def test_variables_left_in_the_environment_are_named_not_obeyed(tmp_path):
    half = subprocess.run(["augkd", "run", *QUICK, "--out", tmp_path / "run"], capture_output=True, text=True,
                          env=here(WORLD_SIZE="2"))
    assert half.returncode == 2 and "Traceback" not in half.stderr, half.stderr[-3000:]
    assert "the environment sets WORLD_SIZE=2 but not RANK, MASTER_ADDR, MASTER_PORT" in half.stderr
    srun = here(SLURM_PROCID="0", SLURM_STEP_NUM_TASKS="2", SLURM_JOB_ID="7")
    inside = subprocess.run(["augkd", "run", *QUICK, "--nproc", "2", "--out", tmp_path / "run"], capture_output=True, text=True, env=srun)
    assert inside.returncode == 2 and "--nproc 2 inside an srun step of 2 tasks (SLURM_STEP_NUM_TASKS)" in inside.stderr, inside.stderr


def test_sigterm_to_the_launcher_reaches_every_process_and_an_uncached_teacher_is_trained_once(tmp_path):
    """`--nproc 2` with WORLD_SIZE=1 left over: named, two processes all the same; they train the missing teacher together
    (no deadlock); SIGTERM to the launcher: each says how to resume."""
    cache = _uncached_teacher(tmp_path)
    run = tmp_path / "run"
    launcher = subprocess.Popen(["augkd", "run", *LONGER, "--nproc", "2", "--out", run], stderr=subprocess.PIPE, text=True,
                                stdout=subprocess.DEVNULL, env=here(AUGKD_CACHE=str(cache), WORLD_SIZE="1"))
    assert _until(lambda: (run / "ckpt" / "anchor.pt").exists() or launcher.poll() is not None, 600), "no stage 2 checkpoint"
    assert launcher.poll() is None, launcher.stderr.read()[-3000:]
    launcher.send_signal(signal.SIGTERM)
    err = launcher.communicate(timeout=120)[1]
    assert launcher.returncode == 143, err[-3000:]
    assert "--nproc 2 starts 2 processes of its own; WORLD_SIZE=1 left in the environment not used" in err
    assert err.count(f"augkd run --out {run} --resume") == 2, err[-3000:]  # each process, with the command that resumes
    assert len(list((cache / "teachers").glob("*/teacher.pt"))) == 1 and "Traceback" not in err


def _srun(rank: int, job: str, **more) -> dict:
    "The variables `srun --ntasks 2` on one node gives its task `rank`."
    return here(SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank), SLURM_STEP_NUM_TASKS="2", SLURM_STEP_NUM_NODES="1",
                SLURM_JOB_ID=job, SLURM_STEP_ID="0", SLURM_NODEID="0", **more)


def test_a_taken_port_under_srun_is_never_chosen_and_a_lost_rank_ends_the_others(tmp_path):
    """The port derived from the job is listened on: the ranks meet on another; SIGKILL to rank 0 mid-run ends rank 1
    within seconds, in one line."""
    from augkd.devices import slurm_environment
    job = str(40000 + os.getpid() % 10000)
    derived = int(slurm_environment(_srun(0, job))["MASTER_PORT"])
    with socket.socket() as taken:
        taken.bind(("", derived)); taken.listen()
        run = tmp_path / "run"
        ranks = [subprocess.Popen(["augkd", "run", *LONGER, "--out", run], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  text=True, env=_srun(r, job)) for r in (0, 1)]
        assert _until(lambda: (run / "ckpt" / "anchor.pt").exists() or any(p.poll() is not None for p in ranks), 600)
        assert all(p.poll() is None for p in ranks), ranks[0].stderr.read()[-3000:] + ranks[1].stderr.read()[-3000:]
        ranks[0].kill()  # what the kernel's out-of-memory killer does
        start = time.time()
        err = ranks[1].communicate(timeout=120)[1]
    assert time.time() - start < 30 and ranks[1].returncode == 1, err[-3000:]
    lines = [l for l in err.splitlines() if l.startswith("augkd run:")]
    assert len(lines) == 1 and "the processes of this run lost each other" in lines[0] and "Traceback" not in err, err[-3000:]


def test_ranks_waiting_for_their_peers_end_on_sigterm_or_when_one_gives_up(tmp_path):
    job = str(50000 + os.getpid() % 10000)
    alone = subprocess.Popen(["augkd", "run", *QUICK, "--out", tmp_path / "run"], stderr=subprocess.PIPE, text=True,
                             env=_srun(1, job))  # rank 0 never comes
    time.sleep(15)  # time to start and wait for it
    assert alone.poll() is None
    alone.send_signal(signal.SIGTERM)
    err = alone.communicate(timeout=30)[1]
    assert alone.returncode == 143 and "terminated by signal 15" in err, err[-3000:]
    with socket.socket() as taken:  # the port the user set is taken: rank 0 says so, rank 1 ends as soon as it does
        taken.bind(("", 0)); taken.listen()
        port = str(taken.getsockname()[1])
        ranks = [subprocess.Popen(["augkd", "run", *QUICK, "--out", tmp_path / "other"], stderr=subprocess.PIPE, text=True,
                                  env=_srun(r, str(int(job) + 1), MASTER_PORT=port)) for r in (1, 0)]
        errs = [p.communicate(timeout=120)[1] for p in ranks]
    assert [p.returncode for p in ranks] == [2, 2], errs
    assert f"augkd run: error: MASTER_PORT={port} is in use on this node" in errs[1]
    assert f"the processes of this job step could not meet: process 0: MASTER_PORT={port} is in use" in errs[0]


# -- threads from the cores that are free --------------------------------------------------------------------------------

THREADS = "from augkd.devices import share_threads; print(share_threads())"


def _threads(prefix=(), **env) -> int:
    done = subprocess.run([*prefix, sys.executable, "-c", THREADS], capture_output=True, text=True,
                          env={**{k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "AUGKD_THREADS")}, **env})
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_threads_follow_the_cpus_a_process_may_use_and_the_runs_on_them(tmp_path):
    "Each process's registry of augkd processes is in its temporary folder: here one of the test's own, which no other test uses."
    from augkd.devices import cpu_budget
    if cpu_budget() < 2: pytest.skip("one CPU: nothing to share")
    private = dict(TMPDIR=str(tmp_path))
    alone = _threads(**private)  # torch's own count (its physical cores), within what the process may use
    assert 1 <= alone <= cpu_budget()
    assert _threads(["taskset", "-c", "0"], **private) == 1  # an affinity mask of one CPU
    assert _threads(SLURM_CPUS_PER_TASK="1", **private) == 1  # srun --cpus-per-task 1
    assert _threads(AUGKD_THREADS="3", **private) == 3  # --threads 3
    other = subprocess.Popen([sys.executable, "-c", "import time; from augkd.devices import sharing_cpus\n"
                              "with sharing_cpus(): time.sleep(120)"], env=here(**private))  # another augkd process training
    try:
        assert _until(lambda: (tmp_path / "augkd-processes" / f"{other.pid}.json").exists(), 60)
        assert _threads(**private) == max(1, alone // 2)
    finally: other.kill(); other.wait()
    assert _threads(**private) == alone  # it ended: the cores are this one's again


@read_only_mounts
def test_threads_follow_a_containers_cpu_quota(tmp_path):
    "A CPU quota of one CPU (cgroup v1's cpu.cfs_quota_us over cpu.cfs_period_us, as a container sees its own) gives one thread."
    quota = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    if not quota.exists(): pytest.skip("no cgroup v1 CPU controller here")
    period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
    (tmp_path / "quota").write_text(f"{period}\n")
    done = subprocess.run(["unshare", "--mount", "sh", "-c", f"mount --bind {tmp_path / 'quota'} {quota} && exec \"$@\"", "sh",
                           sys.executable, "-c", THREADS], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "AUGKD_THREADS")})
    assert done.returncode == 0 and done.stdout.split()[-1] == "1", done.stderr


def test_the_threads_option_is_checked(tmp_path):
    from conftest import in_process
    code, err = in_process("run", *QUICK, "--threads", "0", "--out", tmp_path / "run")
    assert code == 2 and "--threads 0 is out of range: allowed 1 or more" in err


FAKE_AUGKD = '''
import json, sys, time
from pathlib import Path
args = sys.argv[1:]
out = Path(args[args.index("--out") + 1])
time.sleep(0.5)
out.mkdir(parents=True)
threads = args[args.index("--threads") + 1] if "--threads" in args else ""
(out / "results.json").write_text(json.dumps({"stages": {"generator": {"seconds": 0.25}, "mixup": {"seconds": 0.25 + len(threads)}}}))
'''


def test_the_concurrency_benchmark_times_the_ways_it_names(tmp_path):
    "scripts/concurrency.py with a stand-in for augkd that sleeps: four ways, each run's stage seconds, and the verdict."
    from conftest import ROOT
    sys.path.insert(0, str(ROOT / "scripts"))
    import concurrency
    (tmp_path / "fake.py").write_text(FAKE_AUGKD)
    figures = concurrency.measure([sys.executable, str(tmp_path / "fake.py")], ["--preset", "quick"], 2, tmp_path / "out", 8)
    assert list(figures) == ["alone", "together", "together, every core each", "one after the other"]
    assert [len(f["runs"]) for f in figures.values()] == [1, 2, 2, 2]
    assert figures["together"]["runs"] == [0.5, 0.5] and figures["together, every core each"]["runs"] == [1.5, 1.5]  # --threads 8
    assert figures["together"]["wall"] < figures["one after the other"]["wall"]
    table = concurrency.markdown(figures)
    assert "| together | 0.5, 0.5 |" in table and "no longer than one after the other" in table
    (tmp_path / "broken.py").write_text("import sys; sys.exit('no such preset')")
    with pytest.raises(RuntimeError, match="no such preset"):
        concurrency.measure([sys.executable, str(tmp_path / "broken.py")], [], 2, tmp_path / "other", 8)


# -- a cluster job that cannot finish in its time ---------------------------------------------------------------------------

TIMED = '''
import os, time
from pathlib import Path
from augkd.methods import register

def note(name):
    with open(os.environ["AUGKD_TEST_LOG"], "a") as f: f.write(name + "\\n")

@register("brief", "done at once")
def brief(cell):
    note("brief")
    return {"acc": 0.25, "acc3": 0.5, "acc5": 0.75}

@register("long", "longer than the job's time limit, unless told otherwise")
def long(cell):
    note("long")
    time.sleep(float(os.environ.get("AUGKD_TEST_SLEEP", "0")))
    return {"acc": 0.5, "acc3": 0.5, "acc5": 0.75}
'''


def test_a_job_out_of_time_keeps_its_cells_says_why_and_how_to_go_on(tmp_path, augkd_cache):
    """A job that reaches its time limit once more than --requeues allows ends with its finished cells kept, its cause in a
    line, and the command that goes on."""
    _fill_cache()
    (tmp_path / "timed.py").write_text(TIMED)
    log = tmp_path / "cells.log"
    grid = ["augkd", "bench", "--plugin", "timed.py", "--methods", "brief,long", "--preset", "quick", "--settings", "HP-M",
            "--seeds", "0", "--shots", "5", "--out", "bench", "--executor", "local", "--timeout-min", "1", "--requeues", "0"]
    out = subprocess.run(grid, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env=here(AUGKD_TEST_LOG=str(log), AUGKD_TEST_SLEEP="120"))  # submitit signals it 30 s before its minute
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-3000:]
    line, = [l for l in out.stderr.splitlines() if l.startswith("augkd bench: error:")]
    assert "1 benchmark job(s) did not finish, their finished cells kept" in line
    assert "it reached its time limit (1 min) once more than the 0 times it may be requeued" in line and "its log:" in line, line
    assert line.endswith("go on with the same command: " + shlex.join(grid))
    assert len(list((tmp_path / "bench" / "cells" / "brief").glob("*/cell.json"))) == 1  # kept
    again = subprocess.run(grid, capture_output=True, text=True, cwd=tmp_path, timeout=300, env=here(AUGKD_TEST_LOG=str(log)))
    assert again.returncode == 0, again.stderr[-3000:]
    assert log.read_text().split() == ["brief", "long", "long"]  # the finished cell was not run again
    assert "--requeues" in subprocess.run(["augkd", "bench", "--help"], capture_output=True, text=True).stdout


# -- the two file kinds, whole -----------------------------------------------------------------------------------------------

def _viewer_cases() -> dict:
    "For every mode Pillow has: an image of that mode and the RGB a viewer shows for it (a red-and-grey pattern, or grey levels)."
    import numpy as np
    from PIL import Image
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:4] = (200, 30, 30); rgb[4:] = (90, 90, 90)
    colour = Image.fromarray(rgb)
    levels = np.tile(np.linspace(0, 255, 8).round().astype(np.uint8), (8, 1))
    grey, grey3 = Image.fromarray(levels), np.repeat(levels[..., None], 3, 2)
    opaque = np.full((8, 8), 255, np.uint8)
    cases = {mode: (colour.convert(mode), rgb) for mode in ("RGB", "RGBX", "CMYK", "YCbCr", "HSV", "LAB", "RGBA", "RGBa")}
    cases.update({"L": (grey, grey3), "LA": (Image.fromarray(np.dstack([levels, opaque]), "LA"), grey3),
                  "La": (Image.fromarray(np.dstack([levels, opaque]), "LA").convert("La"), grey3),
                  "1": (Image.fromarray(levels >= 128), np.repeat(np.where(levels >= 128, 255, 0)[..., None], 3, 2).astype(np.uint8)),
                  "P": (colour.convert("P", palette=Image.Palette.ADAPTIVE), rgb),
                  "PA": (colour.convert("P", palette=Image.Palette.ADAPTIVE).convert("PA"), rgb),
                  "I": (Image.fromarray(levels.astype(np.int32)), grey3),  # 8-bit samples in a 32-bit file
                  "F": (Image.fromarray(levels.astype(np.float32) / 255), grey3)})  # floats in [0, 1]
    for mode, dtype in (("I;16", "<u2"), ("I;16L", "<u2"), ("I;16B", ">u2"), ("I;16N", "=u2")):
        cases[mode] = (Image.frombytes(mode, (8, 8), (levels.astype(np.uint16) * 257).astype(dtype).tobytes()), grey3)
    return cases


def test_every_image_mode_pillow_opens_decodes_as_a_viewer_shows_it(tmp_path):
    import numpy as np
    from PIL import Image
    from augkd.data import as_rgb, image_folder_domain
    cases = _viewer_cases()
    assert set(cases) == set(Image.MODES), set(Image.MODES) ^ set(cases)
    for mode, (im, shown) in cases.items():
        assert im.mode == mode
        got = np.asarray(as_rgb(im)).astype(int)
        assert np.abs(got - shown).max() <= 8, (mode, got[0, ::3].tolist(), got[-1, ::3].tolist())  # LAB, YCbCr: rounding
    transparent = Image.new("P", (8, 8), 1)
    transparent.putpalette([0, 0, 0, 0, 0, 0] + [0] * 762)
    transparent.info["transparency"] = 1
    assert np.asarray(as_rgb(transparent)).min() == 255  # a palette's transparent colour shows the page: white
    saved = 0
    for mode, (im, shown) in cases.items():  # the same through files, where a format keeps the mode
        folder = tmp_path / mode.replace(";", "_") / "a"
        folder.mkdir(parents=True)
        for suffix in (".png", ".tif"):
            try: im.save(folder / f"image{suffix}")
            except (OSError, ValueError, KeyError): continue
            if Image.open(folder / f"image{suffix}").mode != mode: (folder / f"image{suffix}").unlink(); continue
            break
        else: continue
        saved += 1
        decoded = image_folder_domain(folder.parent, size=8, cache=False).images[0]
        got = (decoded.permute(1, 2, 0) * 255).round().int().numpy()
        assert np.abs(got - shown).max() <= 8, (mode, got[0, ::3].tolist())
    assert saved >= 12, saved  # most modes have a file format here


def test_every_checkpoint_torch_accepts_for_the_architecture_loads_and_says_what_was_absent(tmp_path):
    import torch
    from augkd.models import create_model
    from augkd.teacher import load_teacher_file
    torch.manual_seed(0)
    net = create_model("cnn_small", 10).eval()
    counters = [k for k in net.state_dict() if k.endswith("num_batches_tracked")]
    older = {k: v for k, v in net.state_dict().items() if k not in counters}  # as older PyTorch and some exporters write
    create_model("cnn_small", 10).load_state_dict(older)  # torch's own load_state_dict accepts it
    torch.save({"model": {"module." + k: v.half() for k, v in older.items()}}, tmp_path / "older.pt")  # wrapped, in float16
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in older.items()}, str(tmp_path / "older.safetensors"))
    x = torch.rand(4, 3, 32, 32)
    for file in ("older.pt", "older.safetensors"):
        model, meta = load_teacher_file(tmp_path / file, "cnn_small", [str(c) for c in range(10)], ([0.0] * 3, [1.0] * 3))
        assert meta["absent"] == counters, meta
        assert torch.allclose(model.net(x), net(x), atol=1e-2 if file == "older.pt" else 1e-6)
    broken = dict(older); broken.pop(next(k for k in older if k.endswith("running_mean")))  # what torch refuses is refused
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="running_mean: missing from the file"):
        load_teacher_file(tmp_path / "broken.pt", "cnn_small", [str(c) for c in range(10)])
