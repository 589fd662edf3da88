#!/usr/bin/env bash
# Installs Debian's redis-server when it is missing (the tests start their own on loopback).
set -euo pipefail
command -v redis-server >/dev/null 2>&1 && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
# The package starts a system instance; the tests never use it.
$SUDO service redis-server stop >/dev/null 2>&1 || true
command -v redis-server >/dev/null
