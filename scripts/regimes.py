"""The headline grid in two regimes, side by side: every student (and the cached teacher) from scratch, and from a pretrained init.

    python scripts/regimes.py [--regimes scratch,letters] [--seeds 0,1,2,3,4] [--jobs 2] [--out bench-regimes]
                              [--settings HP-M,PM-H,HM-P --shots 1,5,10,20,50,0]
                              [--deadline SECONDS] [--json nbs/results/regimes.json] [--table-only]

Each regime is `augkd bench`'s headline grid (every registered method, `default` preset; or the columns of `--settings`
and `--shots`, as `augkd bench` takes them) with `student_init` and `teacher_init` set to the regime (`scratch`,
`letters`, `imagenet` or a weights file), in `OUT/REGIME`. The groups (setting x seed, every shot count of the setting
in one group, which distills once for all of them) of all regimes run in one pool, seed by seed and regime by regime, so a grid stopped by
`--deadline` has the same seeds in every regime (the first methods of `--methods` first) and its pairs stay paired; cells resume. At the end (or at the
deadline) the finished cells of every regime are merged into `--json` (`{"regimes": {name: rows}, ...}`: a cell
measured again replaces its row, the other rows stay; each row names the `device` it ran on) and the comparison
(`augkd.bench.regimes_markdown`) is printed. The rows already in `--json` count as finished cells: a grid goes on
from committed results on a new machine.
"""
import argparse, json, multiprocessing, os, time
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path

import torch

import augkd
import augkd.baselines  # noqa: F401  the roster registers itself
from augkd.methods import METHODS
from augkd.bench import HEADLINE, finished_cells, grid_columns, regimes_markdown, restore_cells, run_group, submit_groups
from augkd.cli import add_executor_options, slurm_options
from augkd.inits import resolve_init
from augkd.models import resolve_stem
from augkd.data import config_splits
from augkd.teacher import resolve_teacher
from augkd.stages import make_config
from augkd.devices import resolve_device
from augkd.precision import machine_name


def prepare(regime: str, preset: str, settings=tuple(HEADLINE)) -> None:
    "Train (or read from the cache) every setting's teacher, and pretrain the regime's student, before the pool starts."
    for setting in settings:
        config = make_config(preset, setting=setting, teacher_init=regime, student_init=regime)
        resolve_teacher(config, config_splits(config), resolve_device(config.device), progress=False)
    resolve_init(regime, config.student_arch, resolve_stem(config.student_stem, config.image_size), progress=False)


def merge_rows(earlier: dict, new: dict) -> dict:
    "`{regime: rows}` of `earlier` with each cell of `new` (method, setting, shots, seed and key) replacing or joining them."
    cell = lambda row: (row["method"], row["setting"], row["shots"], row["seed"], row.get("key"))
    merged = {}
    for regime in dict.fromkeys([*earlier, *new]):
        fresh = new.get(regime, [])
        merged[regime] = [row for row in earlier.get(regime, []) if cell(row) not in set(map(cell, fresh))] + fresh
    return merged


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regimes", default="scratch,letters")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--methods", default="all")
    parser.add_argument("--settings", default=None, help="comma-separated settings (default: the headline grid's)")
    parser.add_argument("--shots", default=None, help="comma-separated shot counts, 0 for all (default: the headline grid's)")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench-regimes"))
    parser.add_argument("--deadline", type=float, default=None,
                        help="stop waiting for cells this many seconds after the script started (cells finished by then are kept)")
    parser.add_argument("--json", type=Path, default=None, help="write the finished cells of every regime here")
    parser.add_argument("--table-only", action="store_true", help="run nothing: tabulate the cells finished so far")
    add_executor_options(parser)  # --executor local|debug|slurm and the Slurm options, as `augkd bench` takes them
    args = parser.parse_args()
    start = time.time()
    regimes, seeds = args.regimes.split(","), [int(s) for s in args.seeds.split(",")]
    methods = list(METHODS) if args.methods == "all" else args.methods.split(",")
    overrides = lambda regime: dict(teacher_init=regime, student_init=regime)
    here = machine_name()
    columns = grid_columns(args.settings and args.settings.split(","), args.shots and [int(k) for k in args.shots.split(",")])
    settings = list(dict.fromkeys(s for s, _ in columns))
    earlier = json.loads(args.json.read_text()) if args.json and args.json.exists() else {"regimes": {}}
    for regime in regimes:  # rows committed from another machine are finished cells here
        restore_cells(args.out / regime, [{"device": earlier.get("device"), **row} for row in earlier["regimes"].get(regime, [])])
    if not args.table_only:
        for regime in regimes:
            prepare(regime, args.preset, settings)
            print(f"{regime}: teachers and init ready ({time.time() - start:.0f} s)", flush=True)
        groups = [(setting, [k for s, k in columns if s == setting], seed, methods, args.preset, args.out / regime, False, None,
                   overrides(regime)) for seed in seeds for regime in regimes for setting in settings]
        if args.executor != "processes":  # one submitit job array (a cluster's, or here); --deadline does not apply
            submit_groups(groups, args.out / "submitit", args.executor, slurm_options(args))
        else:
            threads = max(1, (os.cpu_count() or 1) // args.jobs)
            pool = ProcessPoolExecutor(args.jobs, multiprocessing.get_context("spawn"), torch.set_num_threads, (threads,))
            futures = [pool.submit(run_group, *g) for g in groups]
            done, pending = wait(futures, timeout=None if args.deadline is None else max(1.0, args.deadline - (time.time() - start)))
            failed = [f.exception() for f in done if f.exception() is not None]
            print(f"{len(done)} of {len(groups)} groups finished in {time.time() - start:.0f} s"
                  + (f"; {len(failed)} failed: {failed[0]!r}" if failed else ""), flush=True)
            pool.shutdown(wait=not pending, cancel_futures=True)
    rows = {r: [{"device": here, **{k: v for k, v in row.items() if k != "config"}}  # the config is the preset's with the regime's inits
                for row in finished_cells(args.out / r, methods, columns, seeds, args.preset, **overrides(r))]
            for r in regimes}
    if args.json:
        stamped = {r: [{"device": earlier.get("device"), **row} for row in rs] for r, rs in earlier["regimes"].items()}  # before `device` is this run's
        record = {**earlier, "regimes": merge_rows(stamped, rows), "seconds": round(time.time() - start, 1), "jobs": args.jobs,
                  "device": here, "versions": {"augkd": augkd.__version__, "torch": torch.__version__}}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1))
    print(regimes_markdown(rows), flush=True)
    if not args.table_only: os._exit(0)  # cancelled cells' workers are not waited for


if __name__ == "__main__":
    main()
