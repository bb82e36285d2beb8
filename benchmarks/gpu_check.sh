#!/usr/bin/env bash
# The GPU check of issue 15, prepared to run unattended on one GPU in under 8 minutes:
#
#   1. the method tests on the GPU (UNSEEN_TEST_DEVICE: tests/test_methods.py and
#      tests/test_precision.py, every method in fp32, bf16 and fp16 with its GradScaler; the
#      rest of the suite never touches a device);
#   2. every method's training step at the FLO shape (5631 x 1280 EfficientNet-Lite0 features,
#      1024-d semantics), fp32 vs bf16, and SEED_BATCH seeds as one batched model for the
#      methods that support it (--batch-seeds), each in a fresh process
#      (benchmarks/speed_all.py);
#   3. a short FLO run of f-CLSWGAN (FLO-fast config, FLO_EPOCHS generator epochs, seeds
#      0 1 2 trained as one batched model) in fp32 and in bf16: wall time and test numbers;
#
# then prints one table (and writes it to $OUT/gpu_check.md when OUT is set). Each part runs
# under its own time limit (T_TESTS + T_SPEED + 2 x T_RUN = 470 s by default, plus start-up),
# so a slow or broken part is reported and the others still run.
#
#   bash benchmarks/gpu_check.sh                      # on the GPU machine
#   OUT=gpu-check bash benchmarks/gpu_check.sh        # keep the table, runs and timings
#   DEVICE=cpu QUICK=1 bash benchmarks/gpu_check.sh   # dry run on the CPU: tiny problems
#
# Settings (environment): DEVICE (cuda), PARTS (tests speed run: which parts to run),
# PRECISIONS (fp32 bf16), FLO_EPOCHS (5), SEED_BATCH (3),
# DATA_ROOT (../shared/data/xlsa17, relative to the repository root), PYTHON (python),
# QUICK (0; 1: bf16 tests only, step timing of meanreg and izf with one step, the run on the
# built-in demo data instead of FLO), T_TESTS / T_SPEED / T_RUN (time limits in seconds:
# 100 / 170 / 100; the step timing shares T_SPEED among the methods, one at a time).
# Paths are relative to the repository root; nothing here names a machine.

set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

DEVICE=${DEVICE:-cuda}
PARTS=${PARTS:-tests speed run}
PRECISIONS=${PRECISIONS:-fp32 bf16}
FLO_EPOCHS=${FLO_EPOCHS:-5}
SEED_BATCH=${SEED_BATCH:-3}
DATA_ROOT=${DATA_ROOT:-../shared/data/xlsa17}
PYTHON=${PYTHON:-python}
QUICK=${QUICK:-0}
T_TESTS=${T_TESTS:-100}
T_SPEED=${T_SPEED:-170}
T_RUN=${T_RUN:-100}
if [[ -n "${OUT:-}" ]]; then
    WORK=$OUT
    mkdir -p "$WORK" || exit 2
else
    WORK=$(mktemp -d) || exit 2
fi
# unseen from this checkout, installed or not
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 |"); }
now() { date +%s; }
part() { [[ " $PARTS " == *" $1 "* ]]; }

echo "== environment"
if ! "$PYTHON" - "$DEVICE" <<'EOF'; then
import sys

import torch

dev = torch.device(sys.argv[1])
print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
if dev.type == "cuda":
    if not torch.cuda.is_available():
        sys.exit(f"DEVICE={sys.argv[1]} but torch sees no CUDA device (torch {torch.__version__})")
    props = torch.cuda.get_device_properties(dev)
    print(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, "
          f"bf16 supported: {torch.cuda.is_bf16_supported()}")
import unseen  # noqa: F401,E402  (this checkout's package imports)
EOF
    echo "gpu_check: the environment cannot run the check (see above)" >&2
    exit 2
fi
DEVICE_NAME=$("$PYTHON" -c "
import torch, sys
d = torch.device('$DEVICE')
print(torch.cuda.get_device_name(d) if d.type == 'cuda' else 'CPU')")

tests() {
    echo "== 1. method tests on $DEVICE"
    local args=(tests/test_methods.py tests/test_precision.py) precisions="fp32 bf16 fp16"
    if [[ "$QUICK" == 1 ]]; then
        args=(tests/test_precision.py -k "bf16_trains or fp16")
        precisions="bf16 fp16"
    fi
    local t0 status summary
    t0=$(now)
    UNSEEN_TEST_DEVICE=$DEVICE timeout "$T_TESTS" "$PYTHON" -m pytest -q -p no:cacheprovider \
        "${args[@]}" 2>&1 | tee "$WORK/tests.log" | tail -n 15
    status=${PIPESTATUS[0]}
    summary=$(grep -E "passed|failed|error" "$WORK/tests.log" | tail -n 1 | tr -d '=' | xargs)
    [[ $status == 124 ]] && summary="TIMEOUT after ${T_TESTS} s${summary:+ ($summary)}"
    row "tests (${args[*]})" "$DEVICE" "$precisions" "${summary:-exit $status}" "$(($(now) - t0))"
}

speed() {
    echo "== 2. training step per method, FLO shape, precisions: $PRECISIONS"
    local args=(--shapes FLO-effnet --steps 3 --seed-batch "$SEED_BATCH") methods
    methods=$("$PYTHON" -c "from unseen.methods import available_methods as a; print(*a())")
    if [[ "$QUICK" == 1 ]]; then
        args=(--shapes FLO-effnet --steps 1 --seed-batch "$SEED_BATCH")
        methods="meanreg izf"
    fi
    local t0 deadline left method what timed=() missed=()
    t0=$(now)
    deadline=$((t0 + T_SPEED))
    rm -f "$WORK/speed.json" "$WORK/speed.md" "$WORK/speed.log"
    for method in $methods; do  # one at a time, appended: a time-out loses only the rest
        left=$((deadline - $(now)))
        if ((left < 10)); then
            missed+=("$method")
            continue
        fi
        # shellcheck disable=SC2086  # PRECISIONS is a list of words
        timeout "$left" "$PYTHON" benchmarks/speed_all.py --device "$DEVICE" --methods "$method" \
            --precisions $PRECISIONS "${args[@]}" --out "$WORK/speed" --append \
            2>&1 | tee -a "$WORK/speed.log" | grep -E "^[a-z].* step +[0-9]+ ms|FAILED"
        if [[ ${PIPESTATUS[0]} == 0 ]]; then timed+=("$method"); else missed+=("$method"); fi
    done
    what="${#timed[@]} methods timed (table below)"
    ((${#missed[@]})) && what="$what; not timed (time-out or error, speed.log): ${missed[*]}"
    row "speed_all.py ${args[*]}" "$DEVICE" "$PRECISIONS" "$what" "$(($(now) - t0))"
}

summarize_run='
import json, sys
r = json.load(open(sys.argv[1]))
m = {k: v["mean"] for k, v in r["summary"].items() if isinstance(v, dict) and "mean" in v}
seeds = len(r["seeds"])
print("H %.1f (U %.1f, S %.1f), T1 %.1f; %d seeds" % (m["h"], m["u"], m["s"], m["t1"], seeds))
'

run() {
    echo "== 3. short f-CLSWGAN run per precision, seeds 0 1 2 as one batched model"
    local data epochs name
    if [[ "$QUICK" == 1 ]]; then
        data=(--dataset demo --set method.hidden_g=64 --set method.hidden_d=64
            --set method.pretrain_epochs=2 --set classifier.epochs=4
            --set selection.n_synthetic=[20] --set selection.classifier_epochs=[4])
        epochs=2
        name="demo (synthetic), 2 epochs"
    else
        data=(--dataset FLO --data-root "$DATA_ROOT" --set data.features=effnet_lite0.mat
            --config configs/clswgan/FLO-fast.yaml)
        epochs=$FLO_EPOCHS
        name="FLO effnet_lite0, FLO-fast, $FLO_EPOCHS epochs, seeds 0 1 2 batched"
    fi
    local prec out t0 status seconds result
    for prec in $PRECISIONS; do
        out="$WORK/run-clswgan-$prec"
        t0=$(now)
        timeout "$T_RUN" "$PYTHON" -m unseen.cli run clswgan "${data[@]}" \
            --set method.epochs="$epochs" --set selection.eval_every="$epochs" \
            --seeds 0 1 2 --batch-seeds --device "$DEVICE" --precision "$prec" --out "$out" \
            --force --quiet \
            > "$out.log" 2>&1
        status=$?
        seconds=$(($(now) - t0))
        if [[ $status == 0 ]]; then
            result=$("$PYTHON" -c "$summarize_run" "$out/results.json")
        elif [[ $status == 124 ]]; then
            result="TIMEOUT after ${T_RUN} s ($(basename "$out").log)"
        else
            result="exit $status: $(tail -n 1 "$out.log" | cut -c1-150)"
        fi
        echo "$prec: $result"
        row "run clswgan: $name" "$DEVICE" "$prec" "$result" "$seconds"
    done
}

for p in tests speed run; do
    part "$p" && "$p"
done

TABLE=$(
    echo "GPU check ($DEVICE_NAME, DEVICE=$DEVICE, $(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo "| check | device | precision | result | seconds |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
    if [[ -f "$WORK/speed.md" ]]; then
        echo
        echo "Training step per method (benchmarks/speed_all.py):"
        echo
        cat "$WORK/speed.md"
    fi
)
echo
echo "$TABLE"
if [[ -n "${OUT:-}" ]]; then
    echo "$TABLE" > "$OUT/gpu_check.md"
    echo
    echo "written: $OUT/gpu_check.md"
else
    echo
    echo "logs and run folders: $WORK"
fi
