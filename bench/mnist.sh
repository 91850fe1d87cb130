#!/usr/bin/env bash
# Binarised MNIST log-likelihoods of docs/results.md: trains on the 50,000 training rows and prints
# the test log-likelihood (exact log Z for 16 hidden units, AIS for more) with the training time.
# The data (110 MB uncompressed) are not shipped; point MNIST at the directory with the .csv.gz.
#   bench/mnist.sh HIDDEN [TRAIN FLAGS...]                 e.g. bench/mnist.sh 16 --epochs 100
#   AIS="--ais-betas 30000" bench/mnist.sh 500 --epochs 200
#   FLIP=1 bench/mnist.sh 16 ...    trains and tests on flipped pixels (1 - x)
set -euo pipefail
MNIST=${MNIST:-../shared/data/mnist-binarized}
hidden=${1:?usage: bench/mnist.sh HIDDEN [TRAIN FLAGS...]}
shift
cargo build --release --quiet
RBM=target/release/rbm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for s in train test; do
  if [ "${FLIP:-0}" = 1 ]; then
    # Every value is a single 0 or 1: swap the digits on every line but the header.
    zcat "$MNIST/binarized_mnist_$s.csv.gz" | { IFS= read -r header; printf '%s\n' "$header"; tr 01 10; } > "$work/$s.csv"
  else
    zcat "$MNIST/binarized_mnist_$s.csv.gz" > "$work/$s.csv"
  fi
done
"$RBM" train --input "$work/train.csv" --output "$work/model.json" --hidden "$hidden" --seed 0 --quiet --report "$work/report.json" "$@"
if [ "$hidden" -le 20 ]; then method=(--log-likelihood exact); else method=(--log-likelihood ais-bracket ${AIS:-}); fi
"$RBM" eval --model "$work/model.json" --input "$work/test.csv" "${method[@]}" --quiet > "$work/eval.json"
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
e, r = json.load(open(f"{work}/eval.json")), json.load(open(f"{work}/report.json"))
line = f"test log-likelihood {e['mean_log_likelihood']:.2f} nats ({e['log_partition_method']}"
if "ais" in e:
    line += f", stderr {e['log_partition_stderr']:.2f}, effective runs {e['ais']['effective_runs']:.1f}"
    line += f"; reverse AIS {e['reverse_ais']['mean_log_likelihood']:.2f}"
print(line + f"), training {r['train_seconds']:.1f} s over {len(r['epochs'])} epochs")
PY
