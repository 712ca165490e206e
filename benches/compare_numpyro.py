#!/usr/bin/env python3
"""Per-step time of elbo vs NumPyro on the peers' logistic regression (N=5000, D=20, f64), in one run.

NumPyro is timed as ../shared/peers/bench.py times its `svi.run` row: the lax.scan of `svi.update`
that svi.run compiles, compiled ahead of time and executed 3 times (median), Adam(0.01), with
Trace_ELBO(num_particles=S) for S in {1, 10}, AutoNormal (mean-field) and AutoMultivariateNormal
(full-rank). Then `cargo bench --bench logreg --bench logreg_glibc` runs, and the criterion medians
are set beside NumPyro's as ratios. Run it with the peers' Python (../shared/peers/setup.sh):

  ~/.cache/elbo-peers/venv/bin/python benches/compare_numpyro.py [--steps 2000] [--skip-cargo]
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


def numpyro_times(steps: int, repeats: int) -> dict:
    import jax
    import numpyro
    from jax import lax
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoMultivariateNormal, AutoNormal

    numpyro.enable_x64()
    sys.path.insert(0, PEERS)
    import models_numpyro as M

    with open(os.path.join(PEERS, "data", "logreg.json")) as f:
        data = json.load(f)
    margs = M.model_args("logreg", data)
    out = {}
    for family, Guide in (("meanfield", AutoNormal), ("fullrank", AutoMultivariateNormal)):
        for s in (1, 10):
            guide = Guide(M.logreg)
            svi = SVI(M.logreg, guide, numpyro.optim.Adam(step_size=0.01), Trace_ELBO(num_particles=s))
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
            out[f"{family}/S{s}"] = {"us_per_step": statistics.median(runs), "compile_s": compile_s}
            print(f"numpyro {family} S={s}: {out[f'{family}/S{s}']['us_per_step']:.1f} µs/step "
                  f"(compile {compile_s:.2f} s)", file=sys.stderr)
    return out


def criterion_us(group: str, bench_id: str) -> float:
    pattern = os.path.join(ROOT, "target", "criterion", group, bench_id.replace("/", "_"), "new", "estimates.json")
    paths = glob.glob(pattern)
    if not paths:
        return float("nan")
    with open(paths[0]) as f:
        return json.load(f)["median"]["point_estimate"] / 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000, help="NumPyro scan length per timing run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-cargo", action="store_true", help="reuse the last criterion results")
    args = ap.parse_args()

    peer = numpyro_times(args.steps, args.repeats)
    if not args.skip_cargo:
        subprocess.run(["cargo", "bench", "--bench", "logreg", "--bench", "logreg_glibc"], cwd=ROOT, check=True)

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


if __name__ == "__main__":
    main()
