"""How fast the workbench is on a run: opening it with every view built, the live view's cost to a training
stage, the report and a comparison page. Speed targets belong here, not in a timed test.

    python scripts/workbench_bench.py runs/HP-M-default-s0 [--compare-with runs/HP-M-noanchor-s0] [--json nbs/results/workbench.json]

Opening: a fresh process imports augkd (not timed: "a kernel that has imported augkd"), then `open_workbench(RUN)`
builds the run picker and every linked view (anchor map, sample, mixup path, uncertainty) over one load; the first
open of a run without a stored map fits it (UMAP: 10-20 s of numba compilation), so both are reported. The live
view: the seconds spent inside `LiveView`'s callbacks while the run's stages train again (a fresh run with the
run's config, in a temporary folder), against each stage's seconds. The report and the comparison: wall seconds."""
import argparse, json, platform, subprocess, sys, tempfile, time
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--skip-live", action="store_true", help="leave out the live view's cost (a whole run again)")
    parser.add_argument("--compare-with", default=None, help="a second run for the comparison page's time (default: the run alone)")
    args = parser.parse_args(argv)
    from augkd.runs import resolve_run
    run_dir = str(resolve_run(args.run_dir))
    stored = sorted(p.name for p in (Path(run_dir) / "viz").glob("map-*.npz"))
    figures = {"run": run_dir, "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
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
