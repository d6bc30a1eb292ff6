#!/usr/bin/env bash
# The GPU check: every CUDA path of the project in one go (about 8 minutes on one H200), one log
# per step and a summary table, so that one lease of a GPU machine answers all of it.
#
#     bash benchmarks/gpu_check.sh OUT_DIR                       # all steps
#     bash benchmarks/gpu_check.sh --steps env,pytest_gpu OUT_DIR # a subset (or GPU_CHECK_STEPS=...)
#     bash benchmarks/gpu_check.sh --list                        # the steps, in order
#     bash benchmarks/gpu_check.sh fetch-wheels [DIR]            # download the wheels (default .whl/)
#
# Writes OUT_DIR/<NN>_<step>.log per step and OUT_DIR/summary.md (step | status | seconds | key
# number; status passed, failed or "skipped: no GPU"), rewritten after every step so that a run cut
# short still leaves one; prints the table at the end. Exit status 1 when a step failed, 2 on a bad
# command line. A failed or hanging step (each runs under `timeout`) does not stop the others.
#
# Steps: env (install the wheels of .whl/, versions of torch/CuPy/CUDA, nvidia-smi); pytest_gpu
# (`pytest -m gpu`); voxelize (benchmarks/voxelize.py: CPU section and CUDA batch throughput, goal
# >= 10,000 meshes/s at 128^3); train_throughput (benchmarks/train_throughput.py at paper scale on
# CUDA, goal >= 35 % of the H200's dense bf16 peak); torchrun_h5 (2 steps of h5 at paper scale,
# 128^3 and 256 px box scenes from tests/model_fixtures.py, under torchrun --nproc-per-node=1);
# snakemake_tiny (config/tiny.yaml with voxelize.backend cuda and models.gpus 1); bench_<name> (the
# CUDA section of every other benchmarks/*.py that has one: soft_rasterizer, tsdf_fusion, ...).
#
# Without a GPU (no nvidia-smi, or torch.cuda.is_available() false, or GPU_CHECK_NO_GPU=1) env and
# pytest_gpu run as usual (the CUDA tests skip), torchrun_h5 runs in a reduced form on the CPU
# (small scale, 32^3, 2 steps), snakemake_tiny only plans its run (`snakemake -n`: the config
# override is valid) and the benchmarks check that the options used still exist; all of those
# but env, pytest_gpu and torchrun_h5 report "skipped: no GPU".
#
# The GPU machine has no PyPI: the packages its image lacks (benchmarks/gpu_wheels.txt) travel as
# wheels in .whl/ (git-ignored). On a machine with PyPI access run `fetch-wheels` first; the env
# setup installs every wheel whose package is missing or older there into GPU_CHECK_SITE
# (/tmp/site) and puts it on PYTHONPATH.
#
# Environment: GPU_CHECK_STEPS (comma list), GPU_CHECK_BUDGET (seconds for all steps, default
# 480; a step gets at most what is left), GPU_CHECK_WORK (scratch folder for data, results and
# snakemake runs; default a fresh /tmp/gpu_check.XXXXXX), GPU_CHECK_SITE (/tmp/site),
# GPU_CHECK_WHEELS (the wheels' folder, default .whl/), GPU_CHECK_NO_GPU=1 (act as if there were
# no GPU), PYTHON (python3).
set -u -o pipefail

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
REPO="$(cd "$(dirname "$SELF")/.." && pwd)"
PY="${PYTHON:-python3}"
SITE="${GPU_CHECK_SITE:-/tmp/site}"
BUDGET="${GPU_CHECK_BUDGET:-480}"
CORE_STEPS=(env pytest_gpu voxelize train_throughput torchrun_h5 snakemake_tiny)
# Benchmarks with a step of their own above (the others run as bench_<name> when they mention
# CUDA; memory.py does not).
OWN_BENCHMARKS=" voxelize train_throughput "

# Seconds each step may take at most (the budget left caps it further).
step_timeout() {
    case "$1" in
        env) echo 90 ;;
        pytest_gpu) echo 150 ;;
        voxelize) echo 150 ;;
        train_throughput) echo 150 ;;
        torchrun_h5) echo 150 ;;
        snakemake_tiny) echo 270 ;;
        *) echo 120 ;;
    esac
}

all_steps() {
    local f name
    printf '%s\n' "${CORE_STEPS[@]}"
    for f in "$REPO"/benchmarks/*.py; do
        [ -e "$f" ] || continue
        name="$(basename "$f" .py)"
        case "$OWN_BENCHMARKS" in *" $name "*) continue ;; esac
        grep -qi cuda "$f" && echo "bench_$name"
    done
}

# ----------------------------------------------------------------------------------------------
# Wheels

fetch_wheels() {
    local dest="${1:-$REPO/.whl}" line spec binary=() source=() n platforms=()
    mkdir -p "$dest" || return 1
    while IFS= read -r line; do
        spec="${line%%#*}"
        spec="${spec//[[:space:]]/}"
        [ -n "$spec" ] || continue
        case "$line" in
            *"no wheel on PyPI"*) source+=("$spec") ;;
            *) binary+=("$spec") ;;
        esac
    done <"$REPO/benchmarks/gpu_wheels.txt"
    for n in 17 24 26 27 28 31 34 35 39; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
    platforms+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
    "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d "$dest" "${binary[@]}" || return 1
    if [ ${#source[@]} -gt 0 ]; then
        # Pure-Python packages published as source only: a py3-none-any wheel built here.
        "$PY" -m pip wheel --no-deps --no-binary :all: -w "$dest" "${source[@]}" || return 1
    fi
    # Anything but pure Python, CPython 3.12 (or the stable ABI) on x86-64 Linux is a mistake.
    if ls "$dest"/*.whl | grep -v -e '-none-any\.whl$' |
        grep -v -E -e '-(py3-none|cp312-cp312|cp3[0-9]+-abi3)-[^/]*x86_64\.whl$' | grep .; then
        echo "the wheels above do not fit CPython 3.12" >&2
        return 1
    fi
    echo "wheels in $dest: $(ls "$dest"/*.whl | wc -l) files, $(du -sh "$dest" | cut -f1)"
    echo "carry them to the GPU machine: run(command='bash benchmarks/gpu_check.sh ...', carry=['.whl'])"
}

# Install the wheels of .whl/ whose package is missing here or older than the wheel.
install_wheels() {
    local dir="${GPU_CHECK_WHEELS:-$REPO/.whl}"
    if ! ls "$dir"/*.whl >/dev/null 2>&1; then
        echo "no wheels in $dir: using the packages installed here"
        return 0
    fi
    local wanted
    wanted="$("$PY" - "$dir" <<'EOF'
import importlib.metadata as md
import re
import sys
from pathlib import Path

try:
    from packaging.version import Version
except ImportError:  # compare as text
    Version = str
for wheel in sorted(Path(sys.argv[1]).glob("*.whl")):
    name, version = wheel.name.split("-")[:2]
    try:
        have = md.version(re.sub(r"[-_.]+", "-", name))
    except md.PackageNotFoundError:
        have = None
    try:
        older = have is not None and Version(have) < Version(version)
    except Exception:
        older = False
    if have is None or older:
        print(wheel)
    print(f"{name} {version}: {'installed ' + have if have else 'missing'}"
          f"{' (older)' if older else ''}", file=sys.stderr)
EOF
)" || return 1
    if [ -z "$wanted" ]; then
        echo "every wheel of $dir is installed already"
        return 0
    fi
    mkdir -p "$SITE"
    # shellcheck disable=SC2086
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" $wanted || return 1
    echo "installed $(echo "$wanted" | wc -l) wheels into $SITE"
}

# ----------------------------------------------------------------------------------------------
# Helpers of the steps (they run in a child: `bash gpu_check.sh __step NAME`)

key() { printf '%s' "$*" | tr '\n|' ' /' >"$WORK/keys/$STEP"; }
SKIP=99 # exit status of a step that did not run for want of a GPU

have_gpu() { [ "${GPU_CHECK_HAVE_GPU:-0}" = 1 ]; }

# The options a command line of a skipped step would use must still exist in the script.
check_options() {
    local file="$1" opt missing=()
    shift
    [ -f "$file" ] || { echo "$file is gone"; return 1; }
    for opt in "$@"; do grep -q -- "\"$opt\"" "$file" || missing+=("$opt"); done
    if [ ${#missing[@]} -gt 0 ]; then
        key "option(s) ${missing[*]} no longer in $(basename "$file")"
        return 1
    fi
    echo "options $* present in $file"
}

skip_no_gpu() { # FILE OPTION... : skipped, unless the options are gone
    check_options "$@" || return 1
    key "$(basename "$1"): options checked"
    return $SKIP
}

# ----------------------------------------------------------------------------------------------
# Steps

step_env() {
    echo "== wheels"
    cat "$WORK/install.log"
    echo "== machine"
    date -u
    uname -a
    echo "cpus: $(nproc)"
    free -g 2>/dev/null | head -2
    echo "PYTHONPATH=${PYTHONPATH:-}"
    echo "PATH=$PATH"
    echo "== nvidia-smi"
    if command -v nvidia-smi >/dev/null; then nvidia-smi || true; else echo "nvidia-smi: not found"; fi
    echo "== python"
    "$PY" - <<'EOF' || return 1
import importlib
import importlib.metadata as md
import os
import sys

print(sys.executable, sys.version.split()[0])
required = {"torch": "torch", "numpy": "numpy", "numba": "numba", "scipy": "scipy", "pandas": "pandas",
            "pyarrow": "pyarrow", "pandera": "pandera", "dask": "dask", "distributed": "distributed",
            "trimesh": "trimesh", "rtree": "rtree", "mapbox_earcut": "mapbox-earcut",
            "skimage": "scikit-image", "PIL": "pillow", "yaml": "pyyaml", "tqdm": "tqdm", "psutil": "psutil",
            "snakemake": "snakemake", "pytest": "pytest", "hypothesis": "hypothesis"}
missing = []
for module, dist in list(required.items()) + [("cupy", None)]:
    try:
        mod = importlib.import_module(module)
    except Exception as err:  # noqa: BLE001 - report any import failure
        print(f"{module:<14} NOT IMPORTABLE: {type(err).__name__}: {err}")
        if dist is not None:
            missing.append(module)
        continue
    version = getattr(mod, "__version__", None)
    if version is None and dist:
        try:
            version = md.version(dist)
        except md.PackageNotFoundError:
            version = "?"
    print(f"{module:<14} {version:<14} {os.path.dirname(getattr(mod, '__file__', '') or '')}")

try:
    import torch
except ImportError:
    with open(os.environ["GPU_CHECK_KEY_FILE"], "w") as f:
        f.write("MISSING " + " ".join(missing))
    sys.exit(1)
parts = [f"torch {torch.__version__}"]
print(f"torch CUDA build {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
      f"NCCL {torch.cuda.nccl.version() if torch.cuda.is_available() else '-'}, "
      f"cuda available {torch.cuda.is_available()}")
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    print(f"torch device 0: {props.name}, {props.total_memory / 2**30:.0f} GiB, "
          f"sm_{props.major}{props.minor}, {props.multi_processor_count} SMs")
    parts.append(f"CUDA {torch.version.cuda}")
    gpu = props.name
else:
    parts.append("no CUDA device")
    gpu = None
try:
    import cupy

    line = f"cupy {cupy.__version__}"
    try:
        line += (f", CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, driver "
                 f"{cupy.cuda.runtime.driverGetVersion()}, devices {cupy.cuda.runtime.getDeviceCount()}")
    except Exception as err:  # noqa: BLE001
        line += f" (no device: {type(err).__name__})"
    print(line)
    parts.append(f"cupy {cupy.__version__}")
except Exception as err:  # noqa: BLE001
    parts.append("cupy missing")
if gpu:
    parts.append(gpu)
if missing:
    parts.append("MISSING " + " ".join(missing) + " (fetch-wheels, carry .whl)")
with open(os.environ["GPU_CHECK_KEY_FILE"], "w") as f:
    f.write(", ".join(parts))
sys.exit(1 if missing else 0)
EOF
}

step_pytest_gpu() {
    "$PY" -m pytest -m gpu -q -p no:cacheprovider
    local rc=$? counts
    counts="$(tail -n 5 "$STEP_LOG" | grep -E '(passed|skipped|failed|error|deselected|no tests ran)' | tail -n 1 |
        sed -e 's/=//g' -e 's/^ *//' -e 's/ *$//')"
    key "${counts:-no pytest summary line}"
    [ $rc -eq 0 ] || return 1
    if have_gpu && ! grep -qE '[0-9]+ passed' <<<"$counts"; then
        key "no CUDA test passed on a GPU machine: $counts"
        return 1
    fi
}

step_voxelize() {
    local file="$REPO/benchmarks/voxelize.py"
    have_gpu || { skip_no_gpu "$file" --repeats --gpu-meshes; return; }
    "$PY" "$file" --repeats 1 --gpu-meshes 1000 || return 1
    local gpu cpu same
    gpu="$(grep -oE '= [0-9,]+ meshes/s' "$STEP_LOG" | grep -oE '[0-9,]+' | tr -d ,)"
    cpu="$(awk '$1 == "perturbed" && $2 == "icosphere" && $3 == 128 {print $5}' "$STEP_LOG")"
    same="$(grep -oE 'bit-identical on [0-9]+ of [0-9]+' "$STEP_LOG" | grep -oE '[0-9]+ of [0-9]+')"
    if [ -z "$gpu" ]; then
        key "no GPU line: $(grep -m1 'GPU section' "$STEP_LOG")"
        return 1
    fi
    key "$("$PY" - "$gpu" "${cpu:-0}" "${same:-?}" <<'EOF'
import sys

gpu, cpu, same = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
goal = "met" if gpu >= 10000 else "MISSED"
text = f"CUDA {gpu:,} meshes/s at 128^3 incl. fill (goal >= 10,000: {goal})"
if cpu > 0:
    text += f"; CPU {1 / cpu:,.0f} meshes/s ({cpu * 1e3:.2f} ms each) -> {gpu * cpu:,.0f}x"
print(text + f"; GPU = CPU bit for bit on {same}")
EOF
)"
    [ -n "$same" ] && [ "${same%% of *}" = "${same##* of }" ] || return 1
}

step_train_throughput() {
    local file="$REPO/benchmarks/train_throughput.py"
    have_gpu || { skip_no_gpu "$file" --device; return; }
    "$PY" "$file" --device cuda || return 1
    local frac eps tf
    frac="$(awk '/^fraction of bf16 peak/ {print $5}' "$STEP_LOG")"
    eps="$(awk '/^examples\/s/ {print $2}' "$STEP_LOG")"
    tf="$(awk '/^achieved TFLOP\/s/ {print $3}' "$STEP_LOG")"
    if [ -n "$frac" ]; then
        key "$frac of H200 bf16 peak (goal >= 35%: $("$PY" -c "print('met' if float('${frac%\%}') >= 35 else 'MISSED')")); $tf TFLOP/s; $eps examples/s"
    else
        key "$tf TFLOP/s, $eps examples/s (not an H200: no peak fraction)"
    fi
}

# Box scenes (tests/model_fixtures.py) -> scenes, renders, voxels shard paths, one per line.
box_data() { # ROOT RESOLUTION SIZE COUNT
    "$PY" - "$@" <<'EOF'
import sys
from pathlib import Path

sys.path.insert(0, "tests")
from model_fixtures import write_box_scenes

root, resolution, size, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print("\n".join(write_box_scenes(root, "train", count, resolution=resolution, size=size, seed=0)))
EOF
}

step_torchrun_h5() {
    local root="$WORK/h5" scale device res size threads form paths
    if have_gpu; then
        scale=paper device=cuda res=128 size=256 threads=0 form="paper scale, 128^3, 256 px, CUDA"
    else
        scale=small device=cpu res=32 size=128 threads=2 form="CPU reduced form: small scale, 32^3, 128 px"
    fi
    rm -rf "$root"
    echo "== data: 4 box scenes at ${res}^3, ${size} px"
    paths="$(box_data "$root/data" "$res" "$size" 4)" || { key "box data failed"; return 1; }
    mapfile -t paths <<<"$paths"
    echo "${paths[@]}"
    echo "== torchrun ($form)"
    local cmd=(torchrun --standalone --nproc-per-node=1 -m stages.train --model-config config/models/h5.yaml
        --scale "$scale" --scenes "${paths[0]}" --renders "${paths[1]}" --voxels "${paths[2]}"
        --out-dir "$root/model" --device "$device" --threads "$threads" --steps 2 --batch-size 2)
    echo "${cmd[*]}"
    "${cmd[@]}" || { key "$form: torchrun failed"; return 1; }
    ls -l "$root/model"
    cat "$root/model/metrics.csv"
    key "$form: $("$PY" - "$root/model" <<'EOF'
import csv
import sys
from pathlib import Path

out = Path(sys.argv[1])
rows = list(csv.DictReader(open(out / "metrics.csv")))
last = rows[-1]
size = (out / "model.pt").stat().st_size / 2**20
print(f"step {last['step']}, loss {float(last['loss']):.4f}, {last['examples_per_s']} examples/s, "
      f"model.pt {size:.0f} MB")
EOF
)" || return 1
    [ -s "$root/model/model.pt" ]
}

step_snakemake_tiny() {
    local work="$WORK/tiny" name
    rm -rf "$work"
    mkdir -p "$work"
    for name in workflow config profiles; do ln -s "$REPO/$name" "$work/$name"; done
    # A second --configfile merges key by key into tiny.yaml (nested --config overrides replace
    # whole sections in Snakemake).
    cat >"$work/gpu_override.yaml" <<'EOF'
voxelize:
  backend: cuda
models:
  gpus: 1
EOF
    echo "== $work/gpu_override.yaml"
    cat "$work/gpu_override.yaml"
    local args=(--configfile config/tiny.yaml gpu_override.yaml --cores "$(nproc)")
    if ! have_gpu; then
        echo "== no GPU: plan only (snakemake -n)"
        (cd "$work" && "$PY" -m snakemake -n "${args[@]}") || { key "snakemake -n failed"; return 1; }
        key "planned: $(awk '$1 == "total" {print $2; exit}' "$STEP_LOG") jobs ($(awk '$1 == "voxelize_cuda" {print $2; exit}' "$STEP_LOG") voxelize_cuda)"
        return $SKIP
    fi
    (cd "$work" && "$PY" -m snakemake "${args[@]}")
    local rc=$?
    echo "== training logs"
    tail -n 20 "$work"/results/logs/train/*.log 2>/dev/null
    local total
    total="$(awk '$1 == "total" {print $2; exit}' "$STEP_LOG")"
    if [ $rc -ne 0 ]; then
        key "snakemake failed ($(grep -m1 -oE 'Error in rule [a-z_0-9]+' "$STEP_LOG" || echo "see log"))"
        return 1
    fi
    key "$total jobs done ($(awk '$1 == "voxelize_cuda" {print $2; exit}' "$STEP_LOG") voxelize_cuda, train on 1 GPU); h5 mean IoU $("$PY" -c '
import json, sys
print(round(100 * json.load(open(sys.argv[1]))["mean_iou"], 1))' "$work/results/eval/h5/summary.json" 2>/dev/null || echo "?")"
}

step_bench_soft_rasterizer() {
    local file="$REPO/benchmarks/soft_rasterizer.py"
    have_gpu || { skip_no_gpu "$file" --repeats; return; }
    "$PY" "$file" --repeats 3 || return 1
    local row
    row="$(awk '/^CUDA:/ {cuda = 1} cuda && $1 == 256 && $2 == 1280 {print $4, $5, $7}' "$STEP_LOG")"
    [ -n "$row" ] || { key "no CUDA row at 256 px, 1280 faces"; return 1; }
    set -- $row
    key "CUDA 256 px, 1280 faces, fwd+bwd: windowed $1 ms, dense $2 ms ($3); CPU: $(tail -n 1 "$STEP_LOG")"
}

step_bench_tsdf_fusion() {
    local file="$REPO/benchmarks/tsdf_fusion.py"
    have_gpu || { skip_no_gpu "$file" --device --threads; return; }
    "$PY" "$file" --device cuda --threads 8 || return 1
    local row
    row="$(grep '^ours (stages.tsdf.fusion)' "$STEP_LOG" | cut -c41- | awk '{print $1, $2}')"
    [ -n "$row" ] || { key "no row of ours"; return 1; }
    set -- $row
    key "ours on CUDA: $1 frames/s, $2 faces ($(grep -m1 ', grid ' "$STEP_LOG" | cut -d';' -f1))"
}

# Any other benchmark with a CUDA section: run it as it is (it picks the GPU itself).
step_bench_generic() {
    local file="$REPO/benchmarks/${STEP#bench_}.py"
    have_gpu || { skip_no_gpu "$file"; return; }
    "$PY" "$file" || return 1
    key "$(grep -v '^\s*$' "$STEP_LOG" | tail -n 1)"
}

run_step_child() {
    STEP="$1"
    STEP_LOG="$2"
    export GPU_CHECK_KEY_FILE="$WORK/keys/$STEP"
    cd "$REPO" || exit 1
    echo "== $STEP: $(date -u +%FT%TZ), GPU: $(have_gpu && echo yes || echo no)"
    if declare -F "step_$STEP" >/dev/null; then
        "step_$STEP"
    elif [[ "$STEP" == bench_* ]]; then
        step_bench_generic
    else
        echo "unknown step $STEP"
        return 1
    fi
}

# ----------------------------------------------------------------------------------------------
# The parent: steps, timeouts, summary

commit_line() {
    local head
    head="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)" || { echo "? (no git here)"; return; }
    git -C "$REPO" diff --quiet HEAD -- 2>/dev/null && echo "$head" || echo "$head (+ uncommitted changes)"
}

write_summary() {
    local tmp="$OUT_DIR/.summary.md.tmp" passed=0 failed=0 skipped=0 pending=0 name status secs keytext
    {
        echo "# GPU check"
        echo
        echo "- started: $STARTED (UTC), host $(hostname), $(nproc) CPUs"
        echo "- GPU: $GPU_DESC"
        echo "- commit: $(commit_line)"
        echo "- time budget: ${BUDGET} s; logs: <NN>_<step>.log beside this file"
        echo
        echo "| step | status | seconds | key number |"
        echo "| --- | --- | --- | --- |"
        while IFS=$'\t' read -r name status secs keytext; do
            case "$status" in
                passed) passed=$((passed + 1)) ;;
                failed) failed=$((failed + 1)) ;;
                skipped*) skipped=$((skipped + 1)) ;;
                *) pending=$((pending + 1)) ;;
            esac
            echo "| $name | $status | $secs | $keytext |"
        done < <(cat "$WORK/rows" 2>/dev/null; for name in "${PENDING[@]}"; do printf '%s\tpending\t\t\n' "$name"; done)
        echo
        echo "Result: $passed passed, $failed failed, $skipped skipped$([ $pending -gt 0 ] && echo ", $pending pending")."
    } >"$tmp"
    mv "$tmp" "$OUT_DIR/summary.md"
}

run_step() { # INDEX NAME
    local index="$1" name="$2" log limit left start rc secs status keytext
    log="$OUT_DIR/$(printf '%02d' "$index")_$name.log"
    left=$((BUDGET - ($(date +%s) - START_S)))
    limit="$(step_timeout "$name")"
    [ "$left" -lt "$limit" ] && limit="$left"
    start="$(date +%s.%N)"
    rm -f "$WORK/keys/$name"
    if [ "$limit" -lt 10 ]; then
        echo "not run: the time budget of ${BUDGET} s is spent" >"$log"
        rc=-1
    else
        timeout -k 15 "$limit" bash "$SELF" __step "$name" "$log" >"$log" 2>&1 </dev/null
        rc=$?
    fi
    secs="$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')"
    keytext="$(cat "$WORK/keys/$name" 2>/dev/null)"
    case "$rc" in
        0) status=passed ;;
        "$SKIP") status="skipped: no GPU" ;;
        -1) status=failed keytext="not run: time budget (${BUDGET} s) spent" ;;
        124 | 137) status=failed keytext="timed out after ${limit} s${keytext:+; $keytext}" ;;
        *)
            status=failed
            [ -n "$keytext" ] || keytext="exit $rc: $(grep -v '^\s*$' "$log" | tail -n 1 | cut -c1-200)"
            ;;
    esac
    keytext="$(printf '%s' "$keytext" | tr '\n|\t' '  /')"
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$secs" "$keytext" >>"$WORK/rows"
    PENDING=("${PENDING[@]:1}")
    write_summary
    printf '%-24s %-16s %7s s  %s\n' "$name" "$status" "$secs" "$keytext"
}

usage() { sed -n '2,10p' "$SELF" | sed 's/^# \{0,1\}//'; }

main() {
    local steps="${GPU_CHECK_STEPS:-}"
    case "${1:-}" in
        __step)
            # shellcheck disable=SC2317
            run_step_child "$2" "$3"
            exit $?
            ;;
        fetch-wheels)
            fetch_wheels "${2:-}"
            exit $?
            ;;
        --list)
            all_steps
            exit 0
            ;;
        -h | --help)
            usage
            exit 0
            ;;
    esac
    while [ $# -gt 0 ]; do
        case "$1" in
            --steps) steps="${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
            --steps=*) steps="${1#--steps=}"; shift ;;
            -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
            *) break ;;
        esac
    done
    [ $# -eq 1 ] || { usage >&2; exit 2; }
    mkdir -p "$1" || exit 2
    OUT_DIR="$(cd "$1" && pwd)"
    export OUT_DIR

    local known selected=() s
    known="$(all_steps)"
    if [ -n "$steps" ]; then
        IFS=',' read -r -a selected <<<"$steps"
        for s in "${selected[@]}"; do
            grep -qx -- "$s" <<<"$known" || { echo "unknown step '$s' (known: $(echo $known))" >&2; exit 2; }
        done
    else
        mapfile -t selected <<<"$known"
    fi

    WORK="${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu_check.XXXXXX)}"
    mkdir -p "$WORK/keys" "$WORK/bin"
    rm -f "$WORK/rows"
    export WORK
    STARTED="$(date -u +'%F %T')"
    START_S="$(date +%s)"

    cd "$REPO" || exit 2
    install_wheels >"$WORK/install.log" 2>&1 || echo "installing the wheels failed (see the env log)" >>"$WORK/install.log"
    [ -d "$SITE" ] && PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
    # Snakemake's rules call `python` and `torchrun`: both must be $PY (a `python` on the PATH may
    # be another interpreter, without torch).
    local exe
    exe="$(command -v "$PY")" || { echo "no $PY on the PATH" >&2; exit 2; }
    printf '#!/bin/sh\nexec %s "$@"\n' "$exe" >"$WORK/bin/python"
    printf '#!/bin/sh\nexec %s -m torch.distributed.run "$@"\n' "$exe" >"$WORK/bin/torchrun"
    chmod +x "$WORK/bin/python" "$WORK/bin/torchrun"
    export PATH="$WORK/bin:$PATH"
    export PYTHONUNBUFFERED=1

    GPU_CHECK_HAVE_GPU=0
    GPU_DESC="none"
    if [ -n "${GPU_CHECK_NO_GPU:-}" ]; then
        GPU_DESC="none (GPU_CHECK_NO_GPU set)"
    elif ! command -v nvidia-smi >/dev/null; then
        GPU_DESC="none (no nvidia-smi)"
    elif ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        GPU_DESC="none (torch.cuda.is_available() is false)"
    else
        GPU_CHECK_HAVE_GPU=1
        GPU_DESC="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1)"
        GPU_DESC="${GPU_DESC:-yes}"
    fi
    export GPU_CHECK_HAVE_GPU

    echo "GPU check: steps ${selected[*]}; GPU: $GPU_DESC; logs and summary.md in $OUT_DIR; scratch $WORK"
    PENDING=("${selected[@]}")
    write_summary
    local index=0
    for s in "${selected[@]}"; do
        index=$((index + 1))
        run_step "$index" "$s"
    done
    echo
    cat "$OUT_DIR/summary.md"
    local failed
    failed="$(awk -F'\t' '$2 == "failed" {print $1}' "$WORK/rows")"
    [ -n "$failed" ] || exit 0
    for s in $failed; do
        echo
        echo "---- last lines of $(ls "$OUT_DIR"/*_"$s".log)"
        tail -n 15 "$OUT_DIR"/*_"$s".log
    done
    exit 1
}

main "$@"
