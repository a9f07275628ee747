#!/usr/bin/env bash
# Download, on a machine with a package index, the wheels that bench/gpu_check.sh installs on
# a GPU machine without internet (CPython 3.12, x86-64 Linux). torch itself is not fetched:
# the GPU machine's own CUDA build is used. Wheels land in .wheels/ (git-ignored), one
# version of each, no dependency resolution (--no-deps: every needed name is listed here).
#   bash bench/fetch_gpu_wheels.sh            # then carry .wheels/ to the GPU machine
#   PY=3.11 bash bench/fetch_gpu_wheels.sh    # for another Python version
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${DEST:-.wheels}
PY=${PY:-3.12}
PIP=${PIP:-python3 -m pip}
mkdir -p "$DEST"
# The trainer's runtime (numpy, soundfile + cffi + pycparser, soxr, pyyaml, psutil, orjson),
# what the test modules import at collection (textual, rich, watchdog and their needs), and
# pytest with its needs, and nvidia-ml-py for the dashboard's GPU panel. pesq has no wheels (sdist only), so PESQ is skipped there with a note.
PKGS=(
  numpy soundfile cffi pycparser soxr pyyaml psutil orjson watchdog
  "textual>=8,<9" rich markdown-it-py mdit-py-plugins mdurl platformdirs pygments
  typing-extensions pytest iniconfig packaging pluggy
  nvidia-ml-py
)
if [ "${WITH_QUALITY:-0}" = 1 ]; then PKGS+=(pystoi scipy); fi  # +35 MB for STOI
for pkg in "${PKGS[@]}"; do
  $PIP download -q --no-deps --only-binary=:all: --python-version "$PY" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$DEST" "$pkg"
done
ls -1 "$DEST"
du -sh "$DEST"
