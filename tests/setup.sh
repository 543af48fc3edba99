#!/usr/bin/env bash
# Everything the test suite needs on a fresh machine: the system tools the tests drive (GDAL's ogrinfo and
# gdalinfo, headless Chromium for the HTML report) and geoseg with its test extra. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v ogrinfo >/dev/null 2>&1 || missing+=(gdal-bin)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" fonts-dejavu-core >/dev/null
fi
python -m pip install -q -e ".[test]"
