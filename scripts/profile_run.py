"""Where the default run's time goes: `augkd run` as a user runs it, sampled by py-spy, and its budget figures.

    python scripts/profile_run.py [--fresh] [--out DIR] [--rate 50] [--json FILE] [-- augkd run options ...]

It runs `augkd run --out DIR` (the `default` preset unless the options after `--` say otherwise) in a
subprocess under `py-spy record` (`pip install py-spy`; without it the run is timed but not profiled)
and prints two Markdown tables:

- the budget: the stages' seconds from `results.json` and their sum, the whole command's wall time
  (start-up, data, teacher, stages and report; py-spy's sampling adds a few per cent), the report's
  seconds (as `augkd run` prints them) and the peak resident memory;
- the profile: the seconds spent inside each part of the run (`PARTS`: the inclusive time of the
  functions named, from py-spy's samples of the main thread), then, for each stage's step function,
  the source lines the time went to.

`--fresh` gives the run an empty augkd cache (a new `AUGKD_CACHE`), so that it builds DigitShift and
trains its teacher as a first run on a new machine does. `--json FILE` also writes the figures as JSON.
The figures are a benchmark, not a test: measure on an idle machine.
"""
import argparse, collections, json, linecache, os, re, shutil, subprocess, sys, tempfile, time
from pathlib import Path

PARTS = [  # (part, regular expression over the sampled stack, root first)
    ("outside the run and the report (imports, start-up)", r"^(?!.*\brun \(augkd/pipeline\.py)(?!.*write_report)"),
    ("data (DigitShift, splits)", r"\b(digitshift|load_setting|folder_splits) \(augkd/"),
    ("teacher (trained when not cached)", r"\bresolve_teacher \(augkd/"),
    ("stage 1 (generator)", r"\btrain_generator \(augkd/"),
    ("  stage 1: its steps", r"generator_step\.<locals>\.step"),
    ("  stage 1: diagnostics after every epoch", r"train_generator .*stage_diagnostics"),
    ("stage 2 (anchor)", r"\btrain_anchor \(augkd/"),
    ("  stage 2: encoder inversion", r"\binvert_encoder \(augkd/"),
    ("  stage 2: anchor steps", r"anchor_step\.<locals>\.step"),
    ("  stage 2: validation and diagnostics", r"train_anchor .*(stage_diagnostics|anchor_validation)"),
    ("stage 3 (mixup)", r"\btrain_mixup \(augkd/"),
    ("  stage 3: its steps", r"train_mixup .*recipe_learner\.<locals>\.step"),
    ("  stage 3: validation", r"train_mixup .*\bevaluate \(augkd/"),
    ("diagnostics between stages", r"_run_stages \(augkd/pipeline\.py:\d+\);(?:[^;]*<lambda>[^;]*;)?stage_diagnostics"),
    ("checkpoints", r"\bsave_checkpoint \(augkd/"),
    ("report", r"\bwrite_report \(augkd/"),
    ("  report: its 2-D map (UMAP)", r"\bfit_map \(augkd/"),
    ("  report: figures and HTML", r"write_report .*(to_html|\w_figure) \("),
]
STEPS = ("generator_step.<locals>.step", "invert_encoder.<locals>.step", "anchor_step.<locals>.step",
         "mixup_loss_step.<locals>.loss_step", "recipe_learner.<locals>.step")


def read_samples(path: Path) -> list:
    "py-spy's raw output as (frames, count) pairs, frames root first, of the main thread (others start in threading)."
    samples = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and "_bootstrap (threading" not in stack.split(";")[0]: samples.append((stack.split(";"), int(count)))
    return samples


def part_seconds(samples: list, rate: float) -> dict:
    "Seconds inside each of `PARTS` (their names are unique)."
    totals = collections.Counter()
    for frames, count in samples:
        stack = ";".join(frames)
        for part, pattern in PARTS:
            if re.search(pattern, stack): totals[part] += count
    return {part: totals[part] / rate for part, _ in PARTS}


def step_lines(samples: list, rate: float, package: Path, top: int = 6) -> dict:
    "For each step function of `STEPS`: its source lines with the seconds spent in each, most first."
    lines = collections.defaultdict(collections.Counter)
    for frames, count in samples:
        for frame in reversed(frames):
            match = re.match(r"(.+) \((augkd/\w+\.py):(\d+)\)$", frame)
            if match and match.group(1) in STEPS:
                lines[match.group(1)][(match.group(2), int(match.group(3)))] += count
                break
    return {step: [(f"{file}:{n}", linecache.getline(str(package.parent / file), n).strip(), c / rate)
                   for (file, n), c in counter.most_common(top)] for step, counter in lines.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="keep the run in this directory (default: a temporary one, removed at the end)")
    parser.add_argument("--fresh", action="store_true", help="an empty augkd cache: build the data and train the teacher")
    parser.add_argument("--rate", type=int, default=50, help="py-spy's samples per second")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("run_args", nargs="*", help="options for `augkd run` (after --)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="augkd-profile-"))
    out = Path(args.out or work / "run")
    env = {**os.environ, **({"AUGKD_CACHE": str(work / "cache")} if args.fresh else {})}
    runner = ("import resource, sys; from augkd.cli import main; code = main(); "  # its own peak: py-spy's child, not ours
              "print('peak resident KiB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")
    command = [sys.executable, "-c", runner, "run", "--out", str(out), *args.run_args]
    spy = shutil.which("py-spy")
    raw = work / "profile.txt"
    if spy: command = [spy, "record", "--rate", str(args.rate), "--idle", "--format", "raw", "--output", str(raw), "--", *command]
    else: print("py-spy is not installed (pip install py-spy): timing the run without a profile", flush=True)
    start = time.perf_counter()
    finished = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True)
    if finished.returncode and spy and not (out / "results.json").exists():  # py-spy may not be allowed to sample here
        print("py-spy could not sample the run: timing it without a profile", flush=True)
        command, spy = command[command.index("--") + 1:], None
        start = time.perf_counter()
        finished = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if finished.returncode: sys.exit(f"augkd run failed (exit {finished.returncode}): {' '.join(command)}")
    report = re.search(r"wrote \S*report\.html in (\d+) s", finished.stdout)
    results = json.loads((out / "results.json").read_text())
    stages = {name: info["seconds"] for name, info in results["stages"].items() if "seconds" in info}
    samples = read_samples(raw) if spy and raw.exists() else []
    parts = part_seconds(samples, args.rate) if samples else {}
    peak = int(re.search(r"peak resident KiB (\d+)", finished.stdout).group(1))  # KiB on Linux, bytes on macOS
    figures = {"stages": stages, "stages_total": sum(stages.values()), "wall": wall,
               "report": float(report.group(1)) if report else None,
               "peak_memory_gb": peak / (2 ** 30 if sys.platform == "darwin" else 2 ** 20),
               "student": results["student"]["acc"], "teacher": results["teacher"]["acc"], "fresh": args.fresh,
               "parts": parts, "threads": os.cpu_count()}
    print("| | seconds |\n| --- | --- |")
    for name, seconds in stages.items(): print(f"| stage {name} | {seconds:.1f} |")
    print(f"| stages together | {figures['stages_total']:.1f} |")
    print(f"| the command, wall ({'first run: data and teacher built' if args.fresh else 'teacher cached'}) | {wall:.1f} |")
    if figures["report"] is not None: print(f"| of which the report | {figures['report']:.0f} |")
    print(f"\npeak memory {figures['peak_memory_gb']:.2f} GB; student top-1 {figures['student']:.1%}, "
          f"teacher top-1 {figures['teacher']:.1%}")
    if args.json: Path(args.json).write_text(json.dumps(figures, indent=2))
    if samples: print_profile(parts, samples, args.rate)
    shutil.rmtree(work, ignore_errors=True)  # the profile, a --fresh cache and, without --out, the run


def print_profile(parts: dict, samples: list, rate: float):
    "The profile's tables: seconds per part, then each step function's lines."
    print("\n| part of the run | seconds (sampled) |\n| --- | --- |")
    for part, seconds in parts.items(): print(f"| {part} | {seconds:.1f} |")
    import augkd
    for step, rows in step_lines(samples, rate, Path(augkd.__file__).parent).items():
        print(f"\n`{step}`, by source line:\n\n| line | code | seconds |\n| --- | --- | --- |")
        for where, code, seconds in rows: print(f"| {where} | `{code}` | {seconds:.1f} |")


if __name__ == "__main__":
    main()
