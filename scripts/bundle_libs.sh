#!/usr/bin/env bash
# bundle_libs.sh DEST BINARY... : copy the shared libraries the binaries load into DEST, except the
# C runtime and the CUDA driver/toolkit libraries, which the GPU machine provides itself.
set -eu
dest=$1; shift
mkdir -p "$dest"
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|libgcc_s|libstdc\+\+|libcuda\.so|libcudart|libcublas|libcublasLt|libcurand|libnvidia)'
for bin in "$@"; do
  ldd "$bin" | awk '/=> \// {print $1, $3}' | while read -r name path; do
    if echo "$name" | grep -qE "$skip"; then continue; fi
    [ -e "$dest/$name" ] || cp -L "$path" "$dest/$name"
  done
done
ls "$dest"
