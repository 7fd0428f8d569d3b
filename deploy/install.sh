#!/usr/bin/env bash
# Install credstore on a Debian host from this source checkout, as a hardened
# systemd service (deploy/systemd/credstore.service). Idempotent: run it again to
# upgrade the binary and the unit; an existing master key is never replaced.
#
#   sudo deploy/install.sh                      # build Release, install, daemon-reload
#   sudo deploy/install.sh --start              # ... and enable + start the service
#   deploy/install.sh --binary build/credstore  # install a binary built elsewhere
#   DESTDIR=/tmp/stage deploy/install.sh --no-build   # staged install, touches nothing else
#
# Environment: PREFIX (default /usr/local), DESTDIR (staging root; with it, no user is
# created, nothing is chown'ed and systemctl is not called).
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: deploy/install.sh [--no-build] [--binary PATH] [--start] [--help]
  --no-build     do not build; install build/credstore (or --binary)
  --binary PATH  install this binary (implies --no-build)
  --start        enable and start credstore.service (needs a running systemd, no DESTDIR)
environment: PREFIX (default /usr/local), DESTDIR (staged install)
USAGE
}

build=1 start=0 binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --binary)
      [ $# -ge 2 ] || { echo "install.sh: --binary needs a path" >&2; exit 2; }
      binary="$2" build=0; shift ;;
    --binary=*) binary="${1#--binary=}" build=0 ;;
    --start) start=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

PREFIX="${PREFIX:-/usr/local}"
DESTDIR="${DESTDIR:-}"
# Paths given relative to the caller's directory stay valid after the cd below.
if [ -n "$binary" ]; then
  case "$binary" in /*) ;; *) binary="$PWD/$binary" ;; esac
fi
if [ -n "$DESTDIR" ]; then
  case "$DESTDIR" in /*) ;; *) DESTDIR="$PWD/$DESTDIR" ;; esac
  DESTDIR="${DESTDIR%/}"
fi
cd "$(dirname "$0")/.."
UNIT_SRC=deploy/systemd/credstore.service
BIN_DST="$PREFIX/bin/credstore"
ETC=/etc/credstore
KEY="$ETC/master.key"
UNIT_DST=/etc/systemd/system/credstore.service

say() { echo "install.sh: $*" >&2; }
die() { echo "install.sh: error: $*" >&2; exit 1; }

if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (or set DESTDIR for a staged install)"
fi
if [ "$start" -eq 1 ] && [ -n "$DESTDIR" ]; then
  die "--start cannot be used with DESTDIR (a staged install is not live)"
fi
# systemd is PID 1 exactly when this directory exists (sd_booted(3)).
systemd_running=0
[ -d /run/systemd/system ] && systemd_running=1
if [ "$start" -eq 1 ] && [ "$systemd_running" -eq 0 ]; then
  die "--start needs systemd as the init system, and it is not running here"
fi

# ---- 1. the binary --------------------------------------------------------------
if [ "$build" -eq 1 ]; then
  # shellcheck source=deploy/deps.sh
  . deploy/deps.sh
  # shellcheck disable=SC2086
  cs_ensure_packages $CS_BUILD_PKGS
  say "building Release in build-install/"
  cmake -S . -B build-install -DCMAKE_BUILD_TYPE=Release -DCS_TESTS=OFF >/dev/null
  cmake --build build-install -j"$(nproc)" --target credstore >/dev/null
  binary="build-install/credstore"
elif [ -z "$binary" ]; then
  binary=build/credstore
fi
if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
  die "no executable at $binary (build first, or give --binary)"
fi
"$binary" version >/dev/null || die "$binary does not run ('credstore version' failed)"
install -D -m 0755 "$binary" "$DESTDIR$BIN_DST"
say "installed $DESTDIR$BIN_DST"

# ---- 2. the service user ------------------------------------------------------------
if [ -n "$DESTDIR" ]; then
  say "DESTDIR set: not creating the credstore system user (do it at deployment time)"
elif getent passwd credstore >/dev/null; then
  say "system user credstore exists"
else
  useradd --system --user-group --home-dir /var/lib/credstore --no-create-home \
    --shell /usr/sbin/nologin --comment "credstore service" credstore
  say "created system user credstore"
fi

# ---- 3. /etc/credstore and the master key --------------------------------------------
install -d -m 0750 "$DESTDIR$ETC"
if [ -z "$DESTDIR" ]; then
  chown root:credstore "$ETC"
fi
if [ -e "$DESTDIR$KEY" ]; then
  say "kept the existing master key $DESTDIR$KEY"
else
  # 32 random bytes, written under a temporary name and renamed, so an interrupted
  # run never leaves a short key behind.
  (
    umask 0277
    head -c 32 /dev/urandom >"$DESTDIR$KEY.tmp"
  )
  [ "$(wc -c <"$DESTDIR$KEY.tmp")" -eq 32 ] || die "could not read 32 bytes from /dev/urandom"
  chmod 0400 "$DESTDIR$KEY.tmp"
  if [ -z "$DESTDIR" ]; then chown root:root "$KEY.tmp"; fi
  mv "$DESTDIR$KEY.tmp" "$DESTDIR$KEY"
  say "created the master key $DESTDIR$KEY (0400); BACK IT UP: without it the store cannot be opened"
fi
key_mode=$(stat -c %a "$DESTDIR$KEY")
case "$key_mode" in
  400|600) ;;
  *) say "WARNING: $DESTDIR$KEY has mode $key_mode; it should be 0400 (chmod 0400 it)" ;;
esac

if [ ! -e "$DESTDIR$ETC/credstore.env" ]; then
  (
    umask 0137
    cat >"$DESTDIR$ETC/credstore.env" <<'ENV'
# CREDSTORE_<OPTION>=value lines read by credstore.service (see `credstore` usage).
#CREDSTORE_LISTEN=127.0.0.1:8200
#CREDSTORE_LOG_LEVEL=info
#CREDSTORE_TOKEN_TTL=600
ENV
  )
  if [ -z "$DESTDIR" ]; then chown root:credstore "$ETC/credstore.env"; fi
  say "created $DESTDIR$ETC/credstore.env (all settings commented out)"
fi

# ---- 4. the unit and the docs ----------------------------------------------------------
tmp_unit=$(mktemp)
trap 'rm -f "$tmp_unit"' EXIT
sed "s#/usr/local/bin/credstore#$BIN_DST#g; s#file:///usr/local/share/doc/#file://$PREFIX/share/doc/#" \
  "$UNIT_SRC" >"$tmp_unit"
install -D -m 0644 "$tmp_unit" "$DESTDIR$UNIT_DST"
install -D -m 0644 deploy/README.md "$DESTDIR$PREFIX/share/doc/credstore/README.md"
say "installed $DESTDIR$UNIT_DST"

# ---- 5. systemd -------------------------------------------------------------------------
if [ -n "$DESTDIR" ]; then
  say "DESTDIR set: not calling systemctl"
elif [ "$systemd_running" -eq 1 ]; then
  systemctl daemon-reload
  if [ "$start" -eq 1 ]; then
    systemctl enable --now credstore.service
    say "credstore.service enabled and started; on first start the bootstrap admin key"
    say "is written to /var/lib/credstore/bootstrap-admin.json (read it, then delete it)"
  else
    say "not started; run: systemctl enable --now credstore.service"
  fi
else
  say "systemd is not running here: unit installed, no daemon-reload, nothing started"
fi
