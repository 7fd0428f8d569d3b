# Sourced by deploy/dev-serve.sh and tests/run-all.sh: install the Debian
# packages that are missing (only those), with one `apt-get update`.
CS_BUILD_PKGS="cmake make gcc pkg-config libsodium-dev libmicrohttpd-dev libcjson-dev
  liblmdb-dev libcurl4-openssl-dev libyaml-dev libgnutls28-dev"
CS_TEST_PKGS="libcmocka-dev clang clang-format libclang-rt-14-dev valgrind lmdb-utils openssl wrk curl
  python3 python3-pytest python3-requests python3-lmdb python3-botocore python3-boto3 awscli
  python3-cryptography
  nodejs python3-yaml python3-jsonschema systemd strace shellcheck etcd-server etcd-client chromium firefox-esr
  libfaketime"
# npm comes with some nodejs builds (NodeSource's) and is a package of its own
# in Debian's; ask for Debian's only where there is none (the two conflict).
command -v npm >/dev/null 2>&1 || CS_TEST_PKGS="$CS_TEST_PKGS npm"

cs_ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >&2
}
