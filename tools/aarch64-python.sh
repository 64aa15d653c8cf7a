#!/bin/sh
# An aarch64 CPython 3.11 with the lock's aarch64 wheels, run under qemu-user on x86-64:
# how the numerics are checked on the Jetson's CPU class without a Jetson.
#
#   tools/aarch64-python.sh DIR            build DIR/root (Debian's python3.11:arm64 and
#                                          its libraries, unpacked, not installed) and
#                                          DIR/site (pylock.toml for aarch64); idempotent
#
# Needs qemu-user-static and, to run it, root (tests/cpus/emulation.py bind-mounts an
# aarch64 /proc/cpuinfo in a private mount namespace: ONNX Runtime's cpuinfo parses it
# and crashes on the host's x86 one; QEMU 7.2 does not emulate it for aarch64).
set -eu
mkdir -p "$1" && dir=$(cd "$1" && pwd)
stamp="$dir/.ready-$(sha256sum pylock.toml | cut -c1-16)"
[ -f "$stamp" ] && exit 0
rm -rf "$dir" && mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/root"
touch "$dir/apt/status"
# apt with its own state: arm64 only, nothing installed, this machine's dpkg untouched.
apt="-o APT::Architecture=arm64 -o APT::Architectures=arm64 -o Debug::NoLocking=1
     -o Dir::State::Lists=$dir/apt/lists -o Dir::State::Status=$dir/apt/status
     -o Dir::Cache=$dir/apt/cache"
echo "aarch64: Debian's python3.11 for arm64"
# shellcheck disable=SC2086
apt-get $apt update -qq
# shellcheck disable=SC2086
apt-get $apt install -qq -y --download-only --no-install-recommends \
  python3.11-minimal libpython3.11-stdlib libstdc++6 >/dev/null
for deb in "$dir"/apt/cache/archives/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
echo "aarch64: the lock's wheels for manylinux aarch64"
.venv/bin/uv pip install --quiet --target "$dir/site" --python-platform aarch64-manylinux_2_28 \
  --python-version 3.11 --no-build --require-hashes -r pylock.toml
rm -rf "$dir/apt/cache"
touch "$stamp"
