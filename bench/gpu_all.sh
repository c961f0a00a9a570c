#!/usr/bin/env bash
# Every GPU measurement of the project, and its CUDA tests, in under 8 minutes, from any folder:
#
#   bash bench/gpu_all.sh                        # on a CUDA machine: bench/results/<name>_cuda.json
#   bash bench/gpu_all.sh --device cpu --tiny    # a try on CPU with tiny sizes, JSON to a temporary folder
#   bash bench/gpu_all.sh --out DIR              # the JSON files elsewhere
#
# Steps: the CUDA tests (pytest -k cuda), encoder throughput (batch 256 / 1024 in float32, float16,
# bfloat16), every face encoder at batch 256 (faces/s, photos/s end to end), LFW View 2 end to end
# (images/s and accuracy, cnnkit alone), style transfer time of one
# 512 px image (300 L-BFGS steps), training throughput. Each step has its own timeout (cut so that
# all of them end within the 8 minutes); a step that fails or hangs is reported and the next one
# runs. A summary at the end; the exit status is the number of steps that did not pass.
# Python: $PYTHON, else .venv/bin/python if there is one, else python.
set -u
cd "$(dirname "$0")/.."

device=cuda tiny=0 out=
while [ $# -gt 0 ]; do
    case $1 in
        --device) device=$2; shift 2 ;;
        --tiny) tiny=1; shift ;;
        --out) out=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python
    [ -x .venv/bin/python ] && PYTHON=.venv/bin/python
fi
tag=${device%%:*}   # the file names' suffix: cuda, cpu
if [ -z "$out" ]; then
    if [ $tiny = 1 ]; then out=$(mktemp -d -t cnnkit-gpu-all-XXXXXX); else out=bench/results; fi
fi
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if [ "$tag" = cuda ] && ! "$PYTHON" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    echo "no CUDA GPU visible to $PYTHON (try: bash bench/gpu_all.sh --device cpu --tiny)" >&2
    exit 1
fi

deadline=$((SECONDS + 465))   # 8 minutes, less the seconds a killed step may take to die
summary=() failed=0

# step NAME TIMEOUT_S COMMAND...: run COMMAND under its timeout (and what is left of the 8 minutes).
step() {
    local name=$1 limit=$2 started=$SECONDS rc status
    shift 2
    local left=$((deadline - SECONDS))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 10 ]; then
        rc=1 status="SKIPPED (no time left)"
    else
        echo
        echo "== $name (timeout ${limit} s): $*"
        timeout --kill-after=5 "$limit" "$@"
        rc=$?
        case $rc in
            0) status=ok ;;
            124 | 137) status="TIMEOUT after ${limit} s" ;;
            *) status="FAILED (exit $rc)" ;;
        esac
    fi
    [ $rc = 0 ] || failed=$((failed + 1))
    summary+=("$(printf '%-20s %-26s %4d s' "$name" "$status" $((SECONDS - started)))")
}

if [ $tiny = 1 ]; then
    encoder=(--n 8 --batch-sizes 8 16 --repeats 1)
    encoders=(--batch 8 --faces 8 --photos 8 --repeats 1)
    lfw=(--limit 40)
    style=(--size 64 --steps 5)
    train=(--people 80 --batches 1 --configs small-bench,dlib-finetune --cache "$out/train_cache")
else
    encoder=(--batch-sizes 256 1024)
    encoders=(--batch 256 --faces 1024 --photos 512 --repeats 3)
    lfw=()
    style=(--size 512 --steps 300)
    train=(--batches 8 --configs small-bench,small-default,dlib-finetune --threads "$(nproc)")
fi

# pytest exits 5 when no test is selected: not a failure here.
step "cuda tests" 60 "$PYTHON" -c 'import sys, pytest; rc = pytest.main(["-q", "-p", "no:cacheprovider", "tests", "-k", "cuda"]); sys.exit(0 if rc == 5 else rc)'
step "encoder throughput" 75 "$PYTHON" -m bench.faces.encoder_speed --device "$device" \
    --dtype float32 float16 bfloat16 "${encoder[@]}" --out "$out/encoder_speed_$tag.json"
step "every encoder" 60 "$PYTHON" -m bench.faces.encoders_speed --device "$device" --skip-peer \
    "${encoders[@]}" --out "$out/encoders_speed_$tag.json"
step "lfw end to end" 120 "$PYTHON" -m bench.faces.lfw_verification --skip-peer --device "$device" \
    "${lfw[@]}" --out "$out/lfw_verification_$tag.json"
step "style 512 px" 75 "$PYTHON" -m bench.style.style_time --device "$device" "${style[@]}" \
    --out "$out/style_time_$tag.json"
step "train throughput" 90 "$PYTHON" -m bench.faces.train_throughput --device "$device" "${train[@]}" \
    --out "$out/train_throughput_$tag.json"

echo
echo "== summary ($device$([ $tiny = 1 ] && echo ", tiny sizes"); JSON in $out)"
printf '%s\n' "${summary[@]}"
ls "$out"/*_"$tag".json 2>/dev/null
echo "$failed of ${#summary[@]} steps did not pass; $SECONDS s in all"
exit $failed
