#!/usr/bin/env python3
"""Anomaly-detection quality of `rbm` with default settings on the ODDS sets, by the standard
protocol: for each seed, a random 60/40 split; train on the training part without its labels;
ROC-AUC of the free energy on the test part. Standard library only.

  python3 bench/odds.py [--odds ../shared/data/odds] [--rbm target/release/rbm] [--seeds 10]
                        [--sets cardio,thyroid,...] [--extra "--persistent"] [--markdown FILE]
"""
import argparse, csv, gzip, json, os, random, statistics, subprocess, sys, tempfile

IFOREST = {"cardio": 0.926, "thyroid": 0.978, "satellite": 0.706, "shuttle": 0.997, "arrhythmia": 0.811}


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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--odds", default=os.path.join(os.path.dirname(__file__), "../../shared/data/odds"))
    p.add_argument("--rbm", default="target/release/rbm")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--sets", default="cardio,thyroid,satellite,shuttle,arrhythmia")
    p.add_argument("--extra", default="", help="extra flags for rbm train, e.g. --extra='--method cd'")
    p.add_argument("--markdown", help="write the table here too")
    a = p.parse_args()
    lines = ["| set | rows x features | rbm ROC-AUC (mean ± sd over seeds) | Isolation Forest | train s (mean) |",
             "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.sets.split(","):
            header, rows = read(os.path.join(a.odds, f"{name}.csv.gz"))
            aucs, secs = [], []
            for seed in range(a.seeds):
                order = list(range(len(rows)))
                random.Random(seed).shuffle(order)
                cut = int(0.6 * len(rows))
                train, test = [rows[i] for i in order[:cut]], [rows[i] for i in order[cut:]]
                tr, te, model, rep = (os.path.join(tmp, x) for x in ("train.csv", "test.csv", "m.json", "r.json"))
                write(tr, header, train)
                write(te, header, test)
                run(a.rbm, ["train", "--input", tr, "--output", model, "--label-column", "label", "--visible", "gaussian",
                            "--seed", str(seed), "--report", rep, "--quiet"] + a.extra.split())
                secs.append(json.load(open(rep))["train_seconds"])
                out = json.loads(run(a.rbm, ["eval", "--model", model, "--input", te, "--label-column", "label", "--quiet"]))
                aucs.append(out["roc_auc"])
            mean, sd = statistics.mean(aucs), statistics.pstdev(aucs)
            line = (f"| {name} | {len(rows)} x {len(header) - 1} | {mean:.3f} ± {sd:.3f} | {IFOREST.get(name, float('nan')):.3f} "
                    f"| {statistics.mean(secs):.2f} |")
            print(line, flush=True)
            lines.append(line)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
