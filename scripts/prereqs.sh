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
  # The console's browser tests: Debian's Chromium, NSS's tools (pk12util imports a member's
  # PKCS#12 file as a user would), Node.js for playwright-core.
  [ -x /usr/lib/chromium/chromium ] || missing+=(chromium)
  command -v pk12util >/dev/null 2>&1 || missing+=(libnss3-tools)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  if [ ${#missing[@]} -eq 0 ]; then
    ensure_browser_tests
    return 0
  fi
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} (RocksDB's bindings, the console's browser tests)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    ensure_browser_tests
  else
    echo "missing: ${missing[*]}. Run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
}

# playwright-core and axe-core at the versions in tests/browser/package-lock.json (no browser is
# downloaded), and the Chromium policy that lets the native client-certificate test choose the
# test CA's certificate without a dialogue: only for https://127.0.0.1 and only certificates
# issued by the test PKI's CA (demo::write_demo_pki), so no other site or certificate is affected.
ensure_browser_tests() {
  local here
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if [ ! -d "$here/tests/browser/node_modules/playwright-core" ] || [ ! -d "$here/tests/browser/node_modules/axe-core" ]; then
    (cd "$here/tests/browser" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
  local policy=/etc/chromium/policies/managed/kdr-console-tests.json
  if [ ! -f "$policy" ]; then
    if [ "$(id -u)" = "0" ]; then
      mkdir -p "$(dirname "$policy")"
      cp "$here/tests/browser/chromium-policy.json" "$policy"
    else
      echo "the native client-certificate test needs $policy: sudo cp tests/browser/chromium-policy.json $policy" >&2
    fi
  fi
}

# One persistent build directory outside the clone: a cold build of this dependency stack takes
# half an hour on two cores, a warm one seconds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/broker-target}"
