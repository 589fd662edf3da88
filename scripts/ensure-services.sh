#!/usr/bin/env bash
# Installs the Debian packages the tests run for real when any is missing: redis-server, the
# mosquitto MQTT broker, openssl (test certificates), headless Chromium (with its WebDriver)
# and systemd's systemd-analyze (checks deploy/hydromon.service). The tests start their own
# instances on loopback; the system services the packages start are stopped.
set -euo pipefail
# command to look for → Debian package
declare -A NEEDED=(
    [redis-server]=redis-server
    [mosquitto]=mosquitto
    [mosquitto_passwd]=mosquitto
    [openssl]=openssl
    [chromium]=chromium
    [chromedriver]=chromium-driver
    [systemd-analyze]=systemd
)
missing=()
for cmd in "${!NEEDED[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${NEEDED[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
for service in redis-server mosquitto; do
    $SUDO service "$service" stop >/dev/null 2>&1 || true
done
