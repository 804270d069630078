#!/usr/bin/env bash
# Install protloc's Debian 12 build, run and test dependencies (idempotent, non-interactive; needs root or sudo).
set -euo pipefail
PACKAGES=(
  build-essential cmake pkg-config git
  libopenmpi-dev openmpi-bin libhdf5-openmpi-dev hdf5-tools
  libopenblas-dev libdnnl-dev libtiff-dev libpng-dev zlib1g-dev libzstd-dev zstd libcmocka-dev
  libjansson-dev libssl-dev libcairo2-dev
  python3-torch python3-numpy python3-scipy python3-h5py python3-anndata python3-sklearn python3-tifffile python3-faiss
  python3-pil
  shellcheck slurm-wlm munge clang
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#PACKAGES[@]} Debian packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install_deps: installing ${missing[*]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install_deps: done"
