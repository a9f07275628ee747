#!/usr/bin/env bash
# One prepared GPU check, for a CUDA machine without internet, in under 8 minutes:
#   1. installs the packages its Python lacks from wheels carried in .wheels/ (made
#      beforehand by bench/fetch_gpu_wheels.sh); torch is the machine's own CUDA build;
#   2. runs the CUDA-marked tests (pytest -m gpu);
#   3. trains config/hifigan_v1.yaml and config/hifigan_48k.yaml for a few hundred steps in
#      fp32, bf16, fp16 and with torch.compile on demo corpora generated at 22.05 and 48 kHz,
#      vocodes a batch and measures a validation: steps/s, samples/s, peak GPU memory,
#      vocoding real-time factor, validation cost (bench/gpu_check.py);
#   4. starts the demo trainer on the device and prints the dashboard's GPU panel while it
#      runs: the NVML sample (nvidia-ml-py, the [gpu] extra, installed from .wheels/ when
#      the wheel is there), the panel as text, and the whole dashboard headless at 160x45
#      and 80x24 (bench/gpu_panel.py).
# The project runs from this source tree (PYTHONPATH), not installed.
#   bash bench/gpu_check.sh                                  # on the GPU machine
#   bash bench/gpu_check.sh --device cpu --steps 2 --batch 2 --segment 4096   # dry run
# Extra arguments go to bench/gpu_check.py (--configs, --modes, --steps, --budget, ...).
# Environment: PYTHON (default python3), WHEELS (.wheels), SITE (/tmp/nal-site).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-$ROOT/.wheels}
SITE=${SITE:-/tmp/nal-site}
export PYTHONUNBUFFERED=1
start=$SECONDS

"$PY" -c 'import torch' 2>/dev/null || { echo "gpu_check: $PY has no torch" >&2; exit 2; }

# module to import : wheel name (as pip writes it, lower case, '-' as '_')
NEEDS="numpy:numpy _cffi_backend:cffi pycparser:pycparser soundfile:soundfile soxr:soxr
yaml:pyyaml psutil:psutil orjson:orjson watchdog:watchdog textual:textual rich:rich
markdown_it:markdown_it_py mdit_py_plugins:mdit_py_plugins mdurl:mdurl
platformdirs:platformdirs pygments:pygments typing_extensions:typing_extensions
pytest:pytest iniconfig:iniconfig packaging:packaging pluggy:pluggy"
# Wanted, not needed: without it the GPU panel says "install naudiolab[gpu]" (step 4).
OPTIONAL="pynvml:nvidia_ml_py"
missing=()
for pair in $NEEDS; do
  mod=${pair%%:*}
  "$PY" -c "import $mod" 2>/dev/null || missing+=("${pair#*:}")
done
for pair in $OPTIONAL; do
  mod=${pair%%:*}
  name=${pair#*:}
  if ! "$PY" -c "import $mod" 2>/dev/null; then
    if ls "$WHEELS" 2>/dev/null | grep -qi "^${name}-[0-9]"; then missing+=("$name")
    else echo "gpu_check: no wheel for $name in $WHEELS: the GPU panel will say so"; fi
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  files=()
  for name in "${missing[@]}"; do
    f=$(ls "$WHEELS" 2>/dev/null | grep -i "^${name}-[0-9]" | head -n 1)
    if [ -z "$f" ]; then echo "gpu_check: no wheel for $name in $WHEELS (run bench/fetch_gpu_wheels.sh)" >&2; exit 2; fi
    files+=("$WHEELS/$f")
  done
  echo "installing into $SITE: ${missing[*]}"
  mkdir -p "$SITE"
  if "$PY" -m pip --version >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" "${files[@]}" || exit 2
  else  # no pip: a wheel is a zip meant to be importable once unpacked
    for f in "${files[@]}"; do "$PY" -m zipfile -e "$f" "$SITE" || exit 2; done
  fi
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - <<'PY' || exit 2
import torch, numpy, soundfile, soxr, yaml, psutil
print(f"python ok: torch {torch.__version__} (CUDA {torch.version.cuda}, available: "
      f"{torch.cuda.is_available()}), numpy {numpy.__version__}")
PY

echo "== CUDA-marked tests"
"$PY" -m pytest -q -m gpu -p no:cacheprovider tests/unit tests/integration
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 5 ]; then echo "gpu_check: CUDA tests failed (pytest exit $rc)"; fail=1; fi

echo "== training, vocoding, validation cost"
"$PY" bench/gpu_check.py "$@" || fail=1

device=cuda
prev=
for a in "$@"; do
  if [ "$prev" = --device ]; then device=$a; fi
  case $a in --device=*) device=${a#--device=} ;; esac
  prev=$a
done
echo "== GPU panel (a live demo trainer on $device)"
"$PY" bench/gpu_panel.py --device "$device" || fail=1
echo "gpu_check: total $((SECONDS - start)) s${fail:+ (FAILED)}"
exit ${fail:-0}
