#!/usr/bin/env bash
# Set up pc3d for CPU on a fresh Debian/Ubuntu machine: system libraries, a virtual environment,
# the CPU torch wheel, then pc3d itself (editable) with its CPU and test extras.
#   usage: bash tools/setup_env.sh [VENV_DIR]      (default .venv)
# Idempotent: a second run only re-installs pc3d when pyproject.toml/setup.py changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
TORCH_VERSION="${PC3D_TORCH_VERSION:-2.13.0}"
APT_PACKAGES=(libusb-1.0-0 mesa-vulkan-drivers libvulkan1)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "[setup] installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  python3 -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip -q --disable-pip-version-check)

# The CPU wheel first: an unpinned torch would pull several GB of CUDA packages. Its version is read
# from the package metadata: importing torch before numpy is installed prints a NumPy warning.
torch_installed() {
  "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('torch').split('+')[0] != '$TORCH_VERSION')" 2>/dev/null
}
if ! torch_installed; then
  echo "[setup] installing torch==$TORCH_VERSION (CPU)"
  "${PIP[@]}" install "torch==$TORCH_VERSION" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
  torch_installed || { echo "[setup] error: installing torch==$TORCH_VERSION failed (see pip's output above)" >&2; exit 1; }
fi

stamp="$VENV/.pc3d-installed"
digest="$(cat pyproject.toml setup.py | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
  echo "[setup] installing pc3d (editable) with the cpu and test extras"
  "${PIP[@]}" install -e ".[cpu,test]" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
  "$VENV/bin/python" -c "import pc3d, pc3d.kernels, pc3d.viz, pc3d.tools, spconv.pytorch, open3d, numba, lightning"
  echo "$digest" > "$stamp"
fi
echo "[setup] ready: $VENV ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
