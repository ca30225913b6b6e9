#!/usr/bin/env bash
# Install the Debian packages tandem builds against, when missing. Runs apt-get as root; otherwise
# prints the exact install line. The CUDA toolkit is optional: without nvcc tandem builds CPU-only.
set -u
pkgs=(make gcc g++ pkg-config libconfig-dev libopenblas-dev libmujoco-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  line="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
      echo "setup: error: package installation failed; run as root: $line" >&2
      exit 1
    fi
  else
    echo "setup: missing packages: ${missing[*]}" >&2
    echo "setup: run as root: $line" >&2
    exit 1
  fi
fi
if command -v nvcc >/dev/null 2>&1; then
  echo "setup: nvcc found ($(nvcc --version | tail -1)); the CUDA backend will be built"
else
  echo "setup: nvcc not found; building CPU-only (install the CUDA toolkit for the GPU backend)"
fi
echo "setup: dependencies ready"
