#!/usr/bin/env bash
# Issue 7's table in one command: elbo's step beside NumPyro's compiled `svi.run` step on linreg,
# eight schools, logreg, gmm and gmm_large (mean-field and full-rank, S = 1, f64), each row's goal,
# and whole fits beside NumPyro's end-to-end `svi.run` (its compilation included). It runs NumPyro
# first, then `cargo bench` (tiny, logreg, gmm, and deterministic's logreg fit), and prints
# markdown. Needs NumPyro from ../shared/peers/setup.sh; takes about 15 minutes.
#
#   benches/compare.sh [--repeats 3] [--skip-cargo]
set -euo pipefail
cd "$(dirname "$0")/.."
py="${ELBO_PEERS_PYTHON:-$HOME/.cache/elbo-peers/venv/bin/python}"
if [ ! -x "$py" ]; then
  echo "no NumPyro Python at $py: run ../shared/peers/setup.sh first (or set ELBO_PEERS_PYTHON)" >&2
  exit 1
fi
exec "$py" benches/compare_numpyro.py --model table "$@"
