# Sourced by tools/run and tools/test: installs the Debian packages arenakv
# needs to build and test, skipping what is already installed.
arenakv_install_deps() {
  local pkgs=("$@") missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "installing: ${missing[*]}" >&2
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
    { "${sudo[@]}" apt-get update >&2 &&
      "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
}

ARENAKV_BUILD_DEPS=(build-essential cmake pkg-config liblz4-dev libxxhash-dev libedit-dev
                    libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev)
# The benchmarks' anchors: RocksDB (required by bench/compare), LevelDB, LMDB
# and WiredTiger (compiled into bench/compare when present).
ARENAKV_TEST_DEPS=(clang librocksdb-dev libleveldb-dev liblmdb-dev libwiredtiger-dev)
