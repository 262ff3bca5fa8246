#!/bin/sh
# Installs what building, running and testing tlsoffd needs on Debian 12,
# skipping what is already there. Uses sudo when not run as root.
# automake, libtool, dpkg-dev and debian-archive-keyring are for the
# default build's wolfSSL, which contrib/wolfssl-fast/build makes from
# Debian's source package; libwolfssl-dev for WOLFSSL=system (and the
# fallback to it).
set -eu
pkgs="build-essential pkg-config autoconf automake libtool dpkg-dev debian-archive-keyring
      libwolfssl-dev libconfig-dev libjemalloc-dev check openssl curl python3 mandoc nginx haproxy
      gnutls-bin testssl.sh python3-cryptography softhsm2"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "tlsoffd: installing:$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing
