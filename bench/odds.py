#!/usr/bin/env python3
"""Anomaly-detection quality of `rbm` with default settings on the ODDS development sets, beside
Isolation Forest (scikit-learn) and HBOS, ECOD and COPOD (pyod), all on the very same splits.

Protocol (the usual one for these sets): for each seed, a random 60/40 split of the rows; every
detector is fitted on the training part *without its labels*; ROC-AUC of its scores on the test
part. `rbm` gets the training CSV as it is (`rbm train --label-column label`, defaults otherwise)
and is scored with `rbm eval --label-column label`. The peers get the same rows as a matrix,
z-scored on the training part, with their library defaults (Isolation Forest seeded by the split's
seed).

  python3 bench/odds.py [--odds ../shared/data/odds] [--rbm target/release/rbm] [--seeds 5]
                        [--visible auto] [--sets cardio,thyroid,...] [--extra "--hidden 16"] [--markdown FILE]
                        [--no-peers]

The peers need numpy, scikit-learn and pyod; `../shared/bench/setup.sh` makes an environment with
the first two, and this script installs pyod into the running interpreter's environment if it is
missing (`pip install pyod`). Without them (or with --no-peers) only `rbm` is measured.
"""
import argparse, csv, gzip, json, os, random, statistics, subprocess, sys, tempfile, time

SETS = "arrhythmia,cardio,glass,mammography,satellite,shuttle,thyroid,vowels,wbc,wine"
PEERS = ("IForest", "HBOS", "ECOD", "COPOD")


def read(path):
    with gzip.open(path, "rt", newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def run(rbm, args):
    r = subprocess.run([rbm] + args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"rbm {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def load_peers():
    """The peer detectors, or None when numpy/scikit-learn are missing."""
    try:
        import numpy  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        return None
    try:
        import pyod  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "pyod"], check=False)
    import numpy as np
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import roc_auc_score
    try:
        from pyod.models.hbos import HBOS
        from pyod.models.ecod import ECOD
        from pyod.models.copod import COPOD
    except ImportError:
        HBOS = ECOD = COPOD = None

    def score(name, seed, train, test, labels):
        xtr = np.asarray(train, dtype=float)
        xte = np.asarray(test, dtype=float)
        mean, sd = xtr.mean(0), xtr.std(0)
        sd[sd == 0] = 1.0
        xtr, xte = (xtr - mean) / sd, (xte - mean) / sd
        if name == "IForest":
            s = -IsolationForest(random_state=seed).fit(xtr).score_samples(xte)
        else:
            cls = {"HBOS": HBOS, "ECOD": ECOD, "COPOD": COPOD}[name]
            if cls is None:
                return float("nan")
            s = cls().fit(xtr).decision_function(xte)
        return float(roc_auc_score(labels, s))

    return score


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--odds", default=os.path.join(os.path.dirname(__file__), "../../shared/data/odds"))
    p.add_argument("--rbm", default="target/release/rbm")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--sets", default=SETS)
    p.add_argument("--visible", default="auto", help="rbm train --visible (auto: per column, from the data)")
    p.add_argument("--extra", default="", help="extra flags for rbm train, e.g. --extra='--hidden 16'")
    p.add_argument("--markdown", help="write the table here too")
    p.add_argument("--no-peers", action="store_true", help="measure rbm only")
    a = p.parse_args()
    peer_score = None if a.no_peers else load_peers()
    peers = PEERS if peer_score else ()
    head = ["set", "rows x features", "rbm ROC-AUC (mean ± sd)", "no hidden units"] + list(peers) + ["rbm train s (max)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    print(lines[0], flush=True)
    totals = {k: [] for k in ("rbm", "baseline") + peers}
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.sets.split(","):
            header, rows = read(os.path.join(a.odds, f"{name}.csv.gz"))
            label_at = header.index("label")
            got = {k: [] for k in totals}
            secs = []
            for seed in range(a.seeds):
                order = list(range(len(rows)))
                random.Random(seed).shuffle(order)
                cut = int(0.6 * len(rows))
                train, test = [rows[i] for i in order[:cut]], [rows[i] for i in order[cut:]]
                tr, te, model = (os.path.join(tmp, x) for x in ("train.csv", "test.csv", "m.json"))
                write(tr, header, train)
                write(te, header, test)
                start = time.perf_counter()
                run(a.rbm, ["train", "--input", tr, "--output", model, "--label-column", "label",
                            "--visible", a.visible, "--seed", str(seed), "--quiet"] + a.extra.split())
                secs.append(time.perf_counter() - start)
                out = json.loads(run(a.rbm, ["eval", "--model", model, "--input", te, "--label-column", "label", "--quiet"]))
                got["rbm"].append(out["roc_auc"])
                got["baseline"].append(out.get("roc_auc_baseline", float("nan")))
                if peers:
                    features = lambda rs: [[v for j, v in enumerate(r) if j != label_at] for r in rs]
                    labels = [int(float(r[label_at])) for r in test]
                    for peer in peers:
                        got[peer].append(peer_score(peer, seed, features(train), features(test), labels))
            for k in totals:
                totals[k].append(statistics.mean(got[k]))
            cells = [name, f"{len(rows)} x {len(header) - 1}",
                     f"{statistics.mean(got['rbm']):.3f} ± {statistics.pstdev(got['rbm']):.3f}",
                     f"{statistics.mean(got['baseline']):.3f}"]
            cells += [f"{statistics.mean(got[k]):.3f}" for k in peers] + [f"{max(secs):.2f}"]
            line = "| " + " | ".join(cells) + " |"
            print(line, flush=True)
            lines.append(line)
    cells = ["**mean**", "", f"**{statistics.mean(totals['rbm']):.3f}**", f"{statistics.mean(totals['baseline']):.3f}"]
    cells += [f"{statistics.mean(totals[k]):.3f}" for k in peers] + [""]
    lines.append("| " + " | ".join(cells) + " |")
    print(lines[-1])
    for peer in peers:
        ahead = sum(r > q for r, q in zip(totals["rbm"], totals[peer]))
        line = f"rbm ahead of {peer} on {ahead} of {len(totals['rbm'])} sets; mean difference {statistics.mean(totals['rbm']) - statistics.mean(totals[peer]):+.3f}"
        print(line)
        lines.append("")
        lines.append(line)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
