#!/usr/bin/env bash
# The CIFAR-10 study on one CUDA GPU in one short run: at most 8 minutes of wall time (BUDGET_S, default 480).
#
# usage:    experiments/gpu/run.sh OUT             on a machine with a CUDA GPU and PyTorch (python3, or $PYTHON)
#           experiments/gpu/run.sh --dry-run OUT   the same steps on a CPU at a tiny size (a test runs this)
# then:     iwtheory import-gpu OUT                 (here) unpacks the records into results/gpu/<date>-<gpu>/
#
# Steps: (1) CIFAR-10 from $CIFAR_DIR (default data/cifar10), built from cifar10-jpeg.tar.gz and make_cifar10.py
# when missing ($CIFAR_ARCHIVE, .gpu-data/ or ../shared/data/); (2) the GPU-marked tests; (3) the throughput
# benchmark at M = 1, 30 and 60 against a plain DataLoader loop; (4) the study's regimes none and l2 (weight
# decay 1e-3): 60 models, 10 seeds, for as many epochs as the remaining budget allows, measured from (3); (5) OUT/{README.md, nvidia-smi.txt,
# versions.json, gpu-tests.txt, bench.json, run.log, records.tar.gz}: seven files, what a GPU session brings back.
set -uo pipefail
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
OUT=${1:?usage: experiments/gpu/run.sh [--dry-run] OUT}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-python3}
BUDGET=${BUDGET_S:-480}
START=$(date +%s)
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
LOG="$OUT/run.log"
: > "$LOG"
elapsed() { echo $(( $(date +%s) - START )); }
step() { echo "== $(elapsed) s: $*" | tee -a "$LOG"; }
cd "$ROOT" || exit 2
if [ $DRY = 1 ]; then DEVICE=cpu; else DEVICE=cuda; fi

step "machine and versions"
(nvidia-smi 2>&1 || echo "nvidia-smi: not available (dry run: $DRY)") > "$OUT/nvidia-smi.txt"
"$PY" - "$DEVICE" "$DRY" > "$OUT/versions.json" <<'EOF'
import json, os, platform, sys, datetime
import numpy, torch
dev = sys.argv[1]
gpu = torch.cuda.get_device_name(0) if dev == "cuda" and torch.cuda.is_available() else "none"
print(json.dumps({"date": datetime.date.today().isoformat(), "gpu": gpu, "cpus": os.cpu_count(),
                  "machine": platform.machine(), "python": platform.python_version(), "numpy": numpy.__version__,
                  "torch": torch.__version__, "cuda": torch.version.cuda, "dry_run": sys.argv[2] == "1"}, indent=1))
EOF
[ $DRY = 1 ] || "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
  || { step "no CUDA device: stopping (use --dry-run on a CPU)"; exit 2; }

step "data"
DATA=${CIFAR_DIR:-$ROOT/data/cifar10}
if ! "$PY" -c "from iwtheory.nets.readers import read_cifar10; read_cifar10('$DATA')" >> "$LOG" 2>&1; then
  ARCHIVE=""
  for a in "${CIFAR_ARCHIVE:-}" "$ROOT/.gpu-data/cifar10-jpeg.tar.gz" "$ROOT/../shared/data/cifar10-jpeg.tar.gz"; do
    if [ -n "$a" ] && [ -f "$a" ]; then ARCHIVE=$a; break; fi
  done
  if [ -n "$ARCHIVE" ] && [ -f "$(dirname "$ARCHIVE")/make_cifar10.py" ]; then
    "$PY" "$(dirname "$ARCHIVE")/make_cifar10.py" "$DATA" --format bin >> "$LOG" 2>&1 || { step "building CIFAR-10 failed"; exit 2; }
  elif [ $DRY = 1 ]; then
    "$PY" "$ROOT/experiments/gpu/standin_cifar.py" "$DATA" >> "$LOG" 2>&1 || exit 2
    echo "dry run: no CIFAR-10 archive here; a random stand-in in the official layout" >> "$LOG"
  else
    step "no CIFAR-10 under $DATA and no cifar10-jpeg.tar.gz to build it from"; exit 2
  fi
fi

step "GPU-marked tests"
"$PY" -m pytest -q -m gpu -p no:cacheprovider tests/nets > "$OUT/gpu-tests.txt" 2>&1
echo "pytest exit code $?" >> "$OUT/gpu-tests.txt"
tail -n 3 "$OUT/gpu-tests.txt" | tee -a "$LOG"

step "throughput benchmark"
if [ $DRY = 1 ]; then
  BENCH=(--device cpu --models 1,2 --precisions fp32 --steps 2 --train-images 160)
else
  BENCH=(--device cuda --models 1,30,60 --precisions fp32,bf16 --channels-last --steps 30)
fi
"$PY" experiments/benchmarks/cnn_throughput.py "${BENCH[@]}" --json "$OUT/bench.json" 2>&1 | tee -a "$LOG"

step "study"
if [ $DRY = 1 ]; then
  STUDY=(--quick --set epochs=1 --set n_pos=40 --set n_neg=40 --set max_test=100 --set max_other=50
         --set noise_count=20 --set n_feature_images=16)
  EPOCHS=1
else
  LEFT=$(( BUDGET - $(elapsed) - 40 ))
  # an epoch of the study: the 60-model rate (bf16) measured on the benchmark's training images, scaled to the
  # study's 1,800, with a margin of 1.3 for evaluation on the study's schedule and start-up
  EPOCHS=$("$PY" - "$OUT/bench.json" "$LEFT" <<'EOF'
import json, sys
b = json.load(open(sys.argv[1]))
row = [r for r in b["engine"] if r["models"] == 60 and r["precision"] == "bf16"][0]
epoch_s = 60 / row["model_epochs_per_s"] * (1800 / b["train_images"]) * 1.3
print(max(1, min(2000, int(float(sys.argv[2]) // epoch_s))))
EOF
)
  STUDY=(--set "epochs=$EPOCHS" --set n_feature_images=256 --set record_points=4)
fi
echo "epochs: $EPOCHS" | tee -a "$LOG"
CMD=(-m iwtheory train experiments/study_cifar.toml --data-dir "$DATA" --device "$DEVICE" --regime none --regime l2
     "${STUDY[@]}" --out "$OUT/staging/runs" --no-progress)
T0=$(date +%s)
timeout $(( BUDGET > $(elapsed) + 30 ? BUDGET - $(elapsed) - 20 : 10 )) "$PY" "${CMD[@]}" >> "$LOG" 2>&1
RC=$?
STUDY_S=$(( $(date +%s) - T0 ))
step "study finished: exit code $RC after $STUDY_S s"

step "packing"
tar czf "$OUT/records.tar.gz" -C "$OUT/staging" --exclude="features" --exclude="_groups" --exclude="_locks" --exclude="lock" runs
"$PY" - "$OUT" "$RC" "$STUDY_S" "$EPOCHS" "$(elapsed)" "python3 ${CMD[*]}" "$ROOT" <<'EOF'
import json, sys
from pathlib import Path
out, rc, study_s, epochs, wall, cmd, root = sys.argv[1:]
cmd = cmd.replace(out, "OUT").replace(root + "/", "")  # no machine paths in what gets committed
v = json.loads((Path(out) / "versions.json").read_text())
b = json.loads((Path(out) / "bench.json").read_text()) if (Path(out) / "bench.json").exists() else {}
lines = [f"# CIFAR-10 study on {v['gpu']} ({v['date']}){' (dry run on a CPU)' if v['dry_run'] else ''}", "",
         f"- machine: {v['machine']}, {v['cpus']} CPUs, GPU {v['gpu']}; Python {v['python']}, NumPy {v['numpy']}, "
         f"PyTorch {v['torch']} (CUDA {v['cuda']})",
         f"- command: `experiments/gpu/run.sh`, whose study step ran `{cmd}`",
         f"- study: the regimes none and l2 of experiments/study_cifar.toml for {epochs} epochs; "
         f"exit code {rc} after {study_s} s; whole script {wall} s of wall time",
         "- records: metrics, summaries and configs of every run (features left out to keep the folder small)"]
for r in b.get("engine", []):
    lines.append(f"- benchmark: M = {r['models']}, {r['precision']}: {r['ms_per_step']:.2f} ms per step, "
                 f"{r['model_epochs_per_s']:.2f} model-epochs/s, {r['ratio_vs_plain']:.1f}x the plain loop "
                 f"({b['plain_loop']['ms_per_step']:.2f} ms per step)")
(Path(out) / "README.md").write_text("\n".join(lines) + "\n")
EOF
rm -rf "$OUT/staging"
step "done: $(ls "$OUT" | tr '\n' ' ')"
exit $RC
