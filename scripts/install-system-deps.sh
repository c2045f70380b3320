#!/usr/bin/env bash
# Debian packages the platform needs: WSClean (fast imager), AOFlagger, PostgreSQL (production
# storage, tested for real), Chromium and its WebDriver (the browser tests of the QA pages), Redis (cluster
# mode's Celery broker, tested for real). Installs only what is missing; needs root or sudo for that.
set -euo pipefail
need=()
command -v wsclean >/dev/null 2>&1 || need+=(wsclean)
command -v aoflagger >/dev/null 2>&1 || need+=(aoflagger)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${need[*]}"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
  echo "error: need root or sudo to install ${need[*]} (apt-get install ${need[*]})" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
