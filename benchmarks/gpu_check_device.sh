#!/usr/bin/env bash
# The GPU check on a lent GPU machine (no network there): prepare here, run there, copy the results back.
#
#   here:   benchmarks/gpu_check_device.sh prepare      # onnxruntime-gpu 1.31.1 for cp312 into .whl/ as 60 MB parts
#   there:  one device call per part (each carries one .whl/ort.part-XX and appends it to /tmp/ort.whl), then
#           benchmarks/gpu_check_device.sh run          # install /tmp/ort.whl into /tmp/site, run the check into $OUT
#
# The machine's python3 (3.12) already has torch/torchvision and the CUDA 13 + cuDNN 9 nvidia-* wheels; only
# onnxruntime-gpu must travel, and at ~256 MB it is larger than one call may carry (64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  prepare)
    exclude="$(git rev-parse --git-path info/exclude)"
    grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
    mkdir -p .whl
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      -d .whl 'onnxruntime-gpu==1.31.1'
    (cd .whl && sha256sum onnxruntime_gpu-1.31.1-*.whl | cut -d' ' -f1 > ort.sha256 \
       && split -b 60M -d onnxruntime_gpu-1.31.1-*.whl ort.part- && rm onnxruntime_gpu-1.31.1-*.whl)
    ls -l .whl ;;
  append)  # there: benchmarks/gpu_check_device.sh append .whl/ort.part-00  (once per part, in order)
    cat "$2" >> /tmp/ort.whl ;;
  run)
    test -s /tmp/ort.whl || { echo "no /tmp/ort.whl: carry the parts first (append)" >&2; exit 2; }
    if [ -f .whl/ort.sha256 ] && [ "$(sha256sum /tmp/ort.whl | cut -d' ' -f1)" != "$(cat .whl/ort.sha256)" ]; then
      echo "/tmp/ort.whl does not match .whl/ort.sha256: a part is missing or out of order" >&2; exit 2
    fi
    cp /tmp/ort.whl /tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      /tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
    out="${OUT:-/tmp/gpu-check-out}"; mkdir -p "$out"
    PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:functions/inference:export python3 benchmarks/gpu_check.py \
      --builder torch --json "$out/gpu_check.json" --markdown "$out/gpu.md" 2>&1 | tail -c 20000 > "$out/gpu_check.log"
    tail -c 4000 "$out/gpu_check.log" ;;
  *) echo "usage: $0 prepare | append PART | run" >&2; exit 2 ;;
esac
