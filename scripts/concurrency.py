"""Two runs at once against the same two one after the other: `augkd run` as users start it beside each other.

    python scripts/concurrency.py [--runs 2] [--out DIR] [--json FILE] [-- augkd run options ...]

It runs `augkd run` (the `quick` preset unless the options after `--` say otherwise; no report) in four ways, each run
in a fresh run directory under DIR, the cache warm (a first run, not counted, builds DigitShift and the teacher):

- `alone`: one run;
- `together`: `--runs` runs started at once, each taking its share of the CPUs (augkd's default, `share_threads`);
- `together, every core each`: the same with `--threads` set to every CPU the process may use, as every run did before
  augkd shared the cores (torch's own count);
- `one after the other`: the `--runs` runs in turn.

It prints a Markdown table: for each way, the stages' seconds of each run (`results.json`) and the wall time of the
whole way, and whether the runs together took no longer than one after the other. `--json FILE` also writes the
figures (`ways`) with the machine, the day and the options that made them. The figures are a benchmark, not a
test: measure on an otherwise idle machine.
"""
import argparse, json, subprocess, sys, time
from pathlib import Path


def stage_seconds(run_dir) -> float:
    "The seconds of a finished run's stages, added up (`results.json`)."
    results = json.loads((Path(run_dir) / "results.json").read_text())
    return round(sum(info.get("seconds", 0) for info in results["stages"].values()), 2)


def timed(commands: list, # one argv list per run, each writing its run directory
          run_dirs: list, # the run directory of each command
          together: bool, # start them at once, else one after the other
          env: dict = None) -> dict:
    "`{'wall': seconds for them all, 'runs': each run's stage seconds}`; raises `RuntimeError` with the stderr of a run that failed."
    start, done = time.perf_counter(), []
    if together:
        procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env) for c in commands]
        done = [(p.wait(), p.stderr.read()) for p in procs]
    else:
        for c in commands:
            p = subprocess.run(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
            done.append((p.returncode, p.stderr))
    wall = round(time.perf_counter() - start, 2)
    for code, err in done:
        if code != 0: raise RuntimeError(f"a run failed (exit status {code}): {err[-2000:]}")
    return {"wall": wall, "runs": [stage_seconds(d) for d in run_dirs]}


def measure(augkd: list, # the command that runs augkd (["augkd"], or a stand-in for tests)
            options: list, # `augkd run` options
            runs: int, out: Path, cpus: int, env: dict = None) -> dict:
    "The figures of the four ways (see the module's docstring), by name; the first run, warming the cache, not among them."
    out = Path(out)
    def commands(way, n, *more):
        dirs = [out / way / f"run{i}" for i in range(n)]
        return [[*augkd, "run", *options, *more, "--out", str(d)] for d in dirs], dirs
    timed(*commands("warm-up", 1), together=False, env=env)
    ways = {"alone": (1, True, ()), "together": (runs, True, ()),
            "together, every core each": (runs, True, ("--threads", str(cpus))), "one after the other": (runs, False, ())}
    return {way: timed(*commands(way.replace(" ", "-").replace(",", ""), n, *more), together=together, env=env)
            for way, (n, together, more) in ways.items()}


def markdown(figures: dict) -> str:
    "The figures as a Markdown table, then whether the runs together took no longer than the same runs one after the other."
    lines = ["| way | each run's stages (s) | wall, all runs (s) |", "| --- | --- | --- |"]
    lines += [f"| {way} | {', '.join(f'{s:.1f}' for s in f['runs'])} | {f['wall']:.1f} |" for way, f in figures.items()]
    together, apart = figures["together"]["wall"], figures["one after the other"]["wall"]
    verdict = "no longer than" if together <= apart else "LONGER than"
    return "\n".join(lines) + f"\n\nTogether {together:.1f} s, {verdict} one after the other ({apart:.1f} s).\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="runs started together, and run in turn (default 2)")
    parser.add_argument("--out", type=Path, default=Path("concurrency"), help="folder of the run directories (default concurrency/)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    parser.add_argument("--augkd", default="augkd", help="the augkd command (default: augkd)")
    parser.add_argument("options", nargs="*", help="augkd run options, after -- (default: --preset quick)")
    args = parser.parse_args(argv)
    options = (args.options or ["--preset", "quick"]) + ["--report", "false"]
    from augkd.devices import cpu_budget
    from augkd.precision import machine_name
    figures = measure(args.augkd.split(), options, args.runs, args.out, cpu_budget())
    print(markdown(figures))
    if args.json:  # what made the figures beside them: the machine, the day, the options
        made = {"machine": machine_name(), "date": time.strftime("%Y-%m-%d"), "options": options, "cpus": cpu_budget()}
        args.json.write_text(json.dumps({**made, "ways": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
