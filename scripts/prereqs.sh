# Sourced by the other scripts: makes sure a fresh Debian machine with Rust has what the build needs.
#
# RocksDB (under oxigraph) is C++ and its Rust bindings are generated with bindgen, which needs
# libclang at build time. Nothing else beyond Rust and a C/C++ compiler is required.

# libclang itself, as bindgen loads it (libclang.so.N or libclang-N.so.N); not libclang-cpp,
# which LLVM's other packages install alone. One match is enough (`ls` over all the patterns
# failed whenever one of them matched nothing, and so reinstalled it on every run).
have_libclang() {
  local f
  for f in /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* \
    /usr/lib/x86_64-linux-gnu/libclang.so* /usr/lib/x86_64-linux-gnu/libclang-[0-9]*.so*; do
    [ -e "$f" ] && return 0
  done
  return 1
}

ensure_prereqs() {
  local missing=()
  command -v c++ >/dev/null 2>&1 || missing+=(g++)
  have_libclang || missing+=(libclang-dev)
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} (needed to build RocksDB's bindings)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  else
    echo "missing: ${missing[*]}. Run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
}

# One persistent build directory outside the clone: a cold build of this dependency stack takes
# half an hour on two cores, a warm one seconds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/broker-target}"
