#!/usr/bin/env python3
"""Per-step time of elbo vs NumPyro on the peers' models and data, in one run.

NumPyro is timed as ../shared/peers/bench.py times its `svi.run` row: the lax.scan of `svi.update`
that svi.run compiles, compiled ahead of time and executed 3 times (median), Adam(0.01),
AutoNormal (mean-field) and AutoMultivariateNormal (full-rank), f64.

  --model logreg (default): Trace_ELBO(num_particles=S) for S in {1, 10} on logreg (N=5000, D=20);
      then `cargo bench --bench logreg --bench logreg_glibc`.
  --model gmm: S = 1 on gmm (N=1000) and gmm_large (N=100,000), plus one end-to-end `svi.run`
      (set-up, compile and 5,000 / 2,000 steps: the time to the answer); then
      `cargo bench --bench gmm`.
  --model tiny: S = 1 on linreg (N=200, D=10) and eight_schools (D=10), scans of 10,000 steps, plus
      one end-to-end `svi.run` of 10,000 steps per model (AutoNormal: set-up, compile, steps); then
      `cargo bench --bench tiny`.
  --model table: issue 7's table, every model beside NumPyro at S = 1 (the per-step rows above for
      linreg, eight_schools, logreg, gmm and gmm_large, both families), the goal of each row, and
      the time of a whole mean-field fit beside NumPyro's end-to-end `svi.run` of the same number of
      steps; runs `cargo bench` for tiny, logreg, gmm and deterministic's fit/logreg/advi-5000.
      `benches/compare.sh` is this mode.
  --model fits: time to the answer on linreg, logreg and gmm: NumPyro's AutoNormal `svi.run` of
      5,000 steps (end to end, and the compiled scan alone) with its ELBO on 1,000 fresh draws; then
      `cargo bench --bench deterministic` (elbo's DADVI, Laplace, and ADVI at 5,000 steps and by its
      default stopping rule).

The criterion medians are set beside NumPyro's as ratios. Run it with the peers' Python
(../shared/peers/setup.sh):

  ~/.cache/elbo-peers/venv/bin/python benches/compare_numpyro.py [--model gmm] [--steps 2000] [--skip-cargo]
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.environ.get("ELBO_PEERS", os.path.join(ROOT, "..", "shared", "peers"))


def load(name: str):
    import jax  # noqa: F401  (x64 must be on before arrays are made)
    import numpyro

    numpyro.enable_x64()
    sys.path.insert(0, PEERS)
    import models_numpyro as M

    with open(os.path.join(PEERS, "data", f"{name}.json")) as f:
        data = json.load(f)
    return M, M.model_args(name, data)


def scan_us_per_step(model, guide, margs, particles: int, steps: int, repeats: int) -> tuple:
    """Median µs/step of the compiled svi.run scan, and its compile time."""
    import jax
    import numpyro
    from jax import lax
    from numpyro.infer import SVI, Trace_ELBO

    svi = SVI(model, guide, numpyro.optim.Adam(step_size=0.01), Trace_ELBO(num_particles=particles))
    state0 = svi.init(jax.random.PRNGKey(0), *margs)
    body = lambda st, _: svi.update(st, *margs)  # noqa: E731
    t0 = time.perf_counter()
    compiled = jax.jit(lambda st: lax.scan(body, st, None, length=steps)).lower(state0).compile()
    compile_s = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        st, _ = compiled(state0)
        jax.block_until_ready(st)
        runs.append((time.perf_counter() - t0) / steps * 1e6)
    return statistics.median(runs), compile_s


def guides():
    from numpyro.infer.autoguide import AutoMultivariateNormal, AutoNormal

    return (("meanfield", AutoNormal), ("fullrank", AutoMultivariateNormal))


def numpyro_times(steps: int, repeats: int) -> dict:
    M, margs = load("logreg")
    out = {}
    for family, Guide in guides():
        for s in (1, 10):
            us, compile_s = scan_us_per_step(M.logreg, Guide(M.logreg), margs, s, steps, repeats)
            out[f"{family}/S{s}"] = {"us_per_step": us, "compile_s": compile_s}
            print(f"numpyro {family} S={s}: {us:.1f} µs/step (compile {compile_s:.2f} s)", file=sys.stderr)
    return out


def numpyro_gmm_times(repeats: int) -> dict:
    """Per-step (scan of 500 steps on gmm, 50 on gmm_large) and one end-to-end svi.run per fit."""
    import jax
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO

    out = {}
    for name, timing_steps, fit_steps in (("gmm", 500, 5000), ("gmm_large", 50, 2000)):
        M, margs = load(name)
        for family, Guide in guides():
            us, _ = scan_us_per_step(M.gmm, Guide(M.gmm), margs, 1, timing_steps, repeats)
            t0 = time.perf_counter()
            svi = SVI(M.gmm, Guide(M.gmm), numpyro.optim.Adam(step_size=0.01), Trace_ELBO())
            result = svi.run(jax.random.PRNGKey(0), fit_steps, *margs, progress_bar=False)
            jax.block_until_ready(result.params)
            fit_s = time.perf_counter() - t0
            out[f"{name}/{family}"] = {"us_per_step": us, "fit_s": fit_s, "fit_steps": fit_steps}
            print(f"numpyro {name} {family}: {us:.1f} µs/step, svi.run {fit_s:.2f} s", file=sys.stderr)
    return out


def numpyro_tiny_times(repeats: int) -> dict:
    """Per-step (scan of 10,000 steps) for both guides, and one end-to-end svi.run (AutoNormal,
    10,000 steps) per model."""
    import jax
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal

    out = {}
    for name in ("linreg", "eight_schools"):
        M, margs = load(name)
        model = M.MODELS[name]
        for family, Guide in guides():
            us, compile_s = scan_us_per_step(model, Guide(model), margs, 1, 10_000, repeats)
            out[f"{name}/{family}"] = {"us_per_step": us, "compile_s": compile_s}
            print(f"numpyro {name} {family}: {us:.2f} µs/step (compile {compile_s:.2f} s)", file=sys.stderr)
        t0 = time.perf_counter()
        svi = SVI(model, AutoNormal(model), numpyro.optim.Adam(step_size=0.01), Trace_ELBO())
        result = svi.run(jax.random.PRNGKey(0), 10_000, *margs, progress_bar=False)
        jax.block_until_ready(result.params)
        out[f"{name}/fit"] = {"fit_s": time.perf_counter() - t0}
        print(f"numpyro {name} svi.run 10,000 steps: {out[f'{name}/fit']['fit_s']:.2f} s", file=sys.stderr)
    return out


def cargo_bench(args, *argv) -> None:
    """`cargo bench` with these arguments in the project root, unless --skip-cargo."""
    if not args.skip_cargo:
        subprocess.run(["cargo", "bench", *argv], cwd=ROOT, check=True)


def tiny_table(args) -> None:
    peer = numpyro_tiny_times(args.repeats)
    cargo_bench(args, "--bench", "tiny")
    print("| model | family | NumPyro svi.run µs/step | elbo µs/step | elbo / NumPyro |")
    print("|---|---|---:|---:|---:|")
    for name in ("linreg", "eight_schools"):
        for family in ("meanfield", "fullrank"):
            p = peer[f"{name}/{family}"]["us_per_step"]
            ours = criterion_us("tiny-step", f"{name}/{family}")
            print(f"| {name} | {family} | {p:.2f} | {ours:.2f} | {ours / p:.2f} |")
    print()
    print("| model (mean-field, 10,000 steps) | NumPyro svi.run end to end s | elbo fit s | ratio |")
    print("|---|---:|---:|---:|")
    for name in ("linreg", "eight_schools"):
        p = peer[f"{name}/fit"]["fit_s"]
        ours = criterion_us("tiny-fit", f"{name}/meanfield") / 1e6
        print(f"| {name} | {p:.2f} | {ours:.3f} | {ours / p:.3f} |")
    print()
    print("elbo parts (µs): " + ", ".join(
        f"{k} {criterion_us('tiny-parts', k):.2f}" for k in (
            "linreg/log_joint-forward", "linreg/log_joint-forward-backward",
            "linreg/composite/log_joint-forward", "linreg/composite/log_joint-forward-backward",
            "eight_schools/log_joint-forward", "eight_schools/log_joint-forward-backward")))
    print(f"linreg mean-field step with the former composition: {criterion_us('tiny-step', 'linreg/meanfield/composite'):.2f} µs")
    print(f"mean-field step on the three-op model -|z|^2/2, D = 10: {criterion_us('tiny-step', 'standard_normal/meanfield'):.2f} µs")


def numpyro_fit_times(repeats: int) -> dict:
    """AutoNormal, Adam(0.01), 1 draw a step, 5,000 steps: one end-to-end svi.run per model, the
    compiled scan's run time (median of `repeats`), and the ELBO of the fit on 1,000 fresh draws."""
    import jax
    import numpy as np
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal

    out = {}
    for name in ("linreg", "logreg", "gmm"):
        M, margs = load(name)
        model = M.MODELS[name]
        t0 = time.perf_counter()
        guide = AutoNormal(model)
        svi = SVI(model, guide, numpyro.optim.Adam(step_size=0.01), Trace_ELBO())
        result = svi.run(jax.random.PRNGKey(0), 5000, *margs, progress_bar=False)
        jax.block_until_ready(result.params)
        fit_s = time.perf_counter() - t0
        us, compile_s = scan_us_per_step(model, AutoNormal(model), margs, 1, 5000, repeats)
        one = lambda k: Trace_ELBO().loss(k, result.params, model, guide, *margs)  # noqa: E731
        keys = jax.random.split(jax.random.PRNGKey(1), 1000)
        vals = -np.asarray(jax.vmap(one)(keys))
        elbo, se = float(vals.mean()), float(vals.std(ddof=1) / np.sqrt(vals.size))
        out[name] = {"fit_s": fit_s, "scan_s": us * 5000 / 1e6, "compile_s": compile_s, "elbo": elbo, "elbo_se": se}
        print(f"numpyro {name}: svi.run {fit_s:.2f} s end to end, scan {us * 5000 / 1e6:.2f} s "
              f"(compile {compile_s:.2f} s), ELBO {elbo:.2f} ± {se:.2f}", file=sys.stderr)
    return out


def fits_table(args) -> None:
    peer = numpyro_fit_times(args.repeats)
    cargo_bench(args, "--bench", "deterministic")
    methods = ("advi-5000", "advi-rule", "dadvi", "dadvi-no-lr", "laplace")
    print("| model | NumPyro svi.run 5,000 steps, end to end s | its scan alone s | elbo ADVI 5,000 steps s "
          "| elbo ADVI, default stopping rule s | elbo DADVI s | DADVI without linear response s | Laplace s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, p in peer.items():
        ours = {m: criterion_us("fit", f"{name}/{m}") / 1e6 for m in methods}
        cells = [p["fit_s"], p["scan_s"]] + [ours[m] for m in methods]
        print(f"| {name} | " + " | ".join(f"{v:.3g}" for v in cells) + " |")


def numpyro_logreg_fit(steps: int) -> float:
    """One end-to-end AutoNormal svi.run on logreg (set-up and compile included), seconds."""
    import jax
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal

    M, margs = load("logreg")
    t0 = time.perf_counter()
    svi = SVI(M.logreg, AutoNormal(M.logreg), numpyro.optim.Adam(step_size=0.01), Trace_ELBO())
    result = svi.run(jax.random.PRNGKey(0), steps, *margs, progress_bar=False)
    jax.block_until_ready(result.params)
    return time.perf_counter() - t0


def full_table(args) -> None:
    """Issue 7's table: per step at S = 1 for every model and family, and whole fits."""
    tiny = numpyro_tiny_times(args.repeats)
    logreg = numpyro_times(args.steps, args.repeats)
    gmm = numpyro_gmm_times(args.repeats)
    logreg_fit = numpyro_logreg_fit(5000)
    for bench in (["tiny"], ["logreg"], ["gmm"], ["deterministic", "--", "fit/logreg/advi-5000"]):
        cargo_bench(args, "--bench", *bench)
    rows = []  # (model, family, NumPyro µs, elbo µs, goal)
    for name in ("linreg", "eight_schools"):
        for family in ("meanfield", "fullrank"):
            rows.append((name, family, tiny[f"{name}/{family}"]["us_per_step"],
                         criterion_us("tiny-step", f"{name}/{family}"), 1.0))
    for family in ("meanfield", "fullrank"):
        rows.append(("logreg", family, logreg[f"{family}/S1"]["us_per_step"],
                     criterion_us("logreg-mimalloc", f"{family}/S1"), 0.5))
    for name in ("gmm", "gmm_large"):
        for family in ("meanfield", "fullrank"):
            rows.append((name, family, gmm[f"{name}/{family}"]["us_per_step"],
                         criterion_us("gmm-step", f"{name}/{family}"), 0.5))
    print("| model | family | NumPyro svi.run µs/step | elbo µs/step | elbo / NumPyro | goal | met |")
    print("|---|---|---:|---:|---:|---:|---|")
    for name, family, p, ours, goal in rows:
        ratio = ours / p
        print(f"| {name} | {family} | {p:.1f} | {ours:.1f} | {ratio:.2f} | ≤ {goal:g} | {'yes' if ratio <= goal else 'no'} |")
    print()
    fits = (  # model, steps, NumPyro end to end s, elbo criterion (group, id)
        ("linreg", 10_000, tiny["linreg/fit"]["fit_s"], ("tiny-fit", "linreg/meanfield")),
        ("eight_schools", 10_000, tiny["eight_schools/fit"]["fit_s"], ("tiny-fit", "eight_schools/meanfield")),
        ("logreg", 5_000, logreg_fit, ("fit", "logreg/advi-5000")),
        ("gmm", 5_000, gmm["gmm/meanfield"]["fit_s"], ("gmm-fit", "gmm/meanfield")),
        ("gmm_large (elbo: minibatches of 1,000)", 2_000, gmm["gmm_large/meanfield"]["fit_s"],
         ("gmm-fit", "gmm_large/meanfield/batch1000")),
    )
    print("| mean-field fit | steps | NumPyro svi.run end to end s | elbo fit s | elbo / NumPyro |")
    print("|---|---:|---:|---:|---:|")
    for name, steps, p, (group, bench_id) in fits:
        ours = criterion_us(group, bench_id) / 1e6
        print(f"| {name} | {steps} | {p:.2f} | {ours:.3f} | {ours / p:.3f} |")


def criterion_us(group: str, bench_id: str) -> float:
    pattern = os.path.join(ROOT, "target", "criterion", group, bench_id.replace("/", "_"), "new", "estimates.json")
    paths = glob.glob(pattern)
    if not paths:
        return float("nan")
    with open(paths[0]) as f:
        return json.load(f)["median"]["point_estimate"] / 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("logreg", "gmm", "fits", "tiny", "table"), default="logreg")
    ap.add_argument("--steps", type=int, default=2000, help="NumPyro scan length per timing run (logreg)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-cargo", action="store_true", help="reuse the last criterion results")
    args = ap.parse_args()
    if args.model == "gmm":
        gmm_table(args)
        return
    if args.model == "fits":
        fits_table(args)
        return
    if args.model == "table":
        full_table(args)
        return
    if args.model == "tiny":
        tiny_table(args)
        return

    peer = numpyro_times(args.steps, args.repeats)
    cargo_bench(args, "--bench", "logreg", "--bench", "logreg_glibc")

    print("| family | S | NumPyro svi.run µs/step | elbo µs/step (mimalloc) | ratio elbo/NumPyro "
          "| elbo µs/step (glibc malloc) | ratio |")
    print("|---|---|---|---|---|---|---|")
    for key, p in peer.items():
        family, s = key.split("/")
        ours = criterion_us("logreg-mimalloc", key)
        glibc = criterion_us("logreg-glibc", key)
        print(f"| {family} | {s[1:]} | {p['us_per_step']:.1f} | {ours:.1f} | {ours / p['us_per_step']:.2f} "
              f"| {glibc:.1f} | {glibc / p['us_per_step']:.2f} |")
    print()
    for setting in ("1", "2", "unset"):
        print(f"threads={setting}: fullrank S=10 {criterion_us('logreg-threads', f'fullrank/S10/threads={setting}'):.1f} µs/step")


def gmm_table(args) -> None:
    peer = numpyro_gmm_times(args.repeats)
    cargo_bench(args, "--bench", "gmm")
    print("| data | family | NumPyro svi.run µs/step | elbo µs/step | elbo / NumPyro | elbo minibatch 1000 µs/step |")
    print("|---|---|---:|---:|---:|---:|")
    for key, p in peer.items():
        ours = criterion_us("gmm-step", key)
        batch = criterion_us("gmm-step", f"{key}/batch1000") if key.startswith("gmm_large") else float("nan")
        print(f"| {key.split('/')[0]} | {key.split('/')[1]} | {p['us_per_step']:.1f} | {ours:.1f} "
              f"| {ours / p['us_per_step']:.2f} | {batch:.1f} |")
    print()
    print("| fit | NumPyro svi.run end to end s | elbo fit s | ratio |")
    print("|---|---:|---:|---:|")
    for key, ours_key in (("gmm/meanfield", "gmm/meanfield"), ("gmm/fullrank", "gmm/fullrank"),
                          ("gmm_large/meanfield", "gmm_large/meanfield/batch1000")):
        ours = criterion_us("gmm-fit", ours_key) / 1e6
        p = peer[key]
        print(f"| {key} ({p['fit_steps']} steps; elbo: {ours_key}) | {p['fit_s']:.2f} | {ours:.2f} | {ours / p['fit_s']:.3f} |")


if __name__ == "__main__":
    main()
