#!/bin/sh
# Debian packages that the tests run for real, installed when missing:
#   systemd          systemd-analyze checks the unit files
#   mosquitto        the fleet tests' real MQTT broker (TLS, passwords, ACLs)
#   chromium         the web page's end-to-end tests (tests/web), driven by Playwright
#   qemu-system-x86, busybox-static, cpio, kmod
#                    the VM tests (tests/vm): boot Debian's kernel, real V4L2 and UVC stacks
#   qemu-user-static the numerics on other CPU classes (tests/cpus): AVX2-only x86-64
#                    and aarch64
# Best effort: without root or sudo, or off Debian, it says what is missing and goes on;
# the tests that need a missing tool skip, and fail under CI=true.
set -u
command -v dpkg-query >/dev/null 2>&1 || { echo "system-deps: not a Debian system, skipping"; exit 0; }

wanted="systemd mosquitto chromium"
[ "$(uname -m)" = x86_64 ] && wanted="$wanted qemu-system-x86 busybox-static cpio kmod qemu-user-static"
missing=
for pkg in $wanted; do
  dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q ' installed$' || missing="$missing $pkg"
done
[ -n "$missing" ] || exit 0

if [ "$(id -u)" = 0 ]; then
  sudo=
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=sudo
else
  echo "system-deps: missing$missing and no root or sudo to install them; those tests will skip"
  exit 0
fi
echo "system-deps: installing$missing"
$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
  $sudo apt-get install -y -qq --no-install-recommends $missing
