#!/usr/bin/env bash
# MovieLens-100K, the five canonical folds (uK.base to train, uK.test to test), default settings:
# prints each fold's `rbm recommend eval` JSON and the means. The data are not shipped (GroupLens
# terms forbid redistribution); point ML100K at a copy.
#   bench/movielens.sh [EXTRA TRAIN FLAGS...]     e.g. bench/movielens.sh --orientation item
set -euo pipefail
ML100K=${ML100K:-../shared/data/movielens-100k}
cargo build --release --quiet
RBM=target/release/rbm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s.%N)
for k in 1 2 3 4 5; do
  "$RBM" recommend train --ratings "$ML100K/u$k.base" --output "$work/u$k.json" --quiet "$@"
  "$RBM" recommend eval --model "$work/u$k.json" --train "$ML100K/u$k.base" --test "$ML100K/u$k.test" | tee "$work/u$k.eval"
done
end=$(date +%s.%N)
python3 - "$work" "$start" "$end" <<'PY'
import json, sys
work, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rows = [json.load(open(f"{work}/u{k}.eval")) for k in range(1, 6)]
for r in rows:  # ranking metrics are null when there is nothing to rank
    for key in r:
        if r[key] is None:
            r[key] = float("nan")
keys = ["rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k"]
print("fold  " + "  ".join(f"{k:>14}" for k in keys))
for k, r in enumerate(rows, 1):
    print(f"u{k}    " + "  ".join(f"{r[key]:14.4f}" for key in keys))
print("mean  " + "  ".join(f"{sum(r[key] for r in rows) / 5:14.4f}" for key in keys))
print(f"wall time for 5 folds (train + eval): {end - start:.1f} s")
PY
