#!/usr/bin/env bash
# Installs the real components that ferry's integration tests start: a distribution registry,
# skopeo and umoci as reference clients, openssl for the test PKI, zstd, and the Docker and
# containerd engines, podman (daemonless), and jq (the Docker mirror README's merge command is run). Idempotent: when every binary is already on PATH it
# does nothing and says so.
# It installs packages only; starting dockerd/containerd is the job of whoever runs the tests.
set -euo pipefail

# binary -> Debian package that ships it (bookworm names).
binaries=(docker-registry skopeo umoci openssl zstd dockerd containerd ctr podman jq)
declare -A package_of=(
  [docker-registry]=docker-registry
  [skopeo]=skopeo
  [umoci]=umoci
  [openssl]=openssl
  [zstd]=zstd
  [dockerd]=docker.io
  [containerd]=containerd
  [ctr]=containerd
  [podman]=podman
  [jq]=jq
)

log() { printf 'test-env: %s\n' "$*"; }

# dockerd lives in /usr/sbin, which a non-login or non-root PATH may lack.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

missing_packages=()
for binary in "${binaries[@]}"; do
  if ! command -v "$binary" >/dev/null 2>&1; then
    package=${package_of[$binary]}
    log "missing binary '$binary' (package $package)"
    case " ${missing_packages[*]-} " in
      *" $package "*) ;;
      *) missing_packages+=("$package") ;;
    esac
  fi
done

if [ "${#missing_packages[@]}" -eq 0 ]; then
  log "all present: ${binaries[*]}"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  log "not root and no passwordless sudo; install these packages yourself:"
  printf '  apt-get update && apt-get install -y --no-install-recommends %s\n' "${missing_packages[*]}"
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  log "apt-get not found; install these Debian packages (or equivalents): ${missing_packages[*]}"
  exit 1
fi

# Package maintainer scripts must not try to start dockerd/containerd during the install (there may
# be no init system, as in CI containers). policy-rc.d exit 101 = "action forbidden"; only add one
# if the machine does not already have its own, and remove ours afterwards.
policy_rc=/usr/sbin/policy-rc.d
added_policy_rc=0
cleanup() {
  if [ "$added_policy_rc" -eq 1 ]; then
    "${as_root[@]}" rm -f "$policy_rc"
  fi
}
trap cleanup EXIT
if [ ! -e "$policy_rc" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy_rc" >/dev/null
  "${as_root[@]}" chmod 0755 "$policy_rc"
  added_policy_rc=1
fi

export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
log "apt-get install ${missing_packages[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing_packages[@]}" >/dev/null

still_missing=()
for binary in "${binaries[@]}"; do
  command -v "$binary" >/dev/null 2>&1 || still_missing+=("$binary")
done
if [ "${#still_missing[@]}" -ne 0 ]; then
  log "still missing after install: ${still_missing[*]}"
  exit 1
fi
log "installed ${missing_packages[*]}; all present: ${binaries[*]}"
