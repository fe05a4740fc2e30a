#!/usr/bin/env bash
# Builds the Azure Functions deployment package for pat-rotator:
#
#   dist/pat-rotator.zip
#     host.json
#     RotatePat/function.json
#     ProvisionPat/function.json
#     SecretEvent/function.json
#     Status/function.json
#     pat-rotator              (x86_64 Linux ELF, mode 0755, at the zip root)
#
# The binary is linked against glibc <= 2.28 with `cargo zigbuild` (PyPI packages
# `ziglang` + `cargo-zigbuild`, installed into the repo-local virtualenv .venv-zig),
# so it runs on every Azure Functions Linux image. After the build the script reads
# the binary's dynamic symbol versions and fails if any GLIBC_x.y is newer than 2.28.
#
# Usage: scripts/package.sh [--out PATH] [--skip-build]
#   --out PATH     where to write the zip (default: dist/pat-rotator.zip)
#   --skip-build   package the binary already in target/ (no cargo run)
# Environment:
#   CARGO_BUILD_JOBS, CARGO_TARGET_DIR   honoured as usual by cargo
#   PACKAGE_NICE=0                       do not lower the build's CPU priority
#   SOURCE_DATE_EPOCH                    timestamp stored in the zip (default 2000-01-01;
#                                        a release sets the commit time)
#
# Reproducible: two runs on the same commit, toolchain and pins give the same SHA-256.
# The zip has a fixed entry order, fixed timestamps (SOURCE_DATE_EPOCH) and fixed modes;
# the binary carries no path of the machine that built it: rustc remaps the checkout, the
# cargo home and the target directory (--remap-path-prefix), and the C parts (aws-lc) get
# the same as -ffile-prefix-map; the release profile builds with one codegen unit, fat LTO
# and stripped symbols. infra/tests/test_package_script.py checks the zip on every run and,
# opt-in (PAT_ROTATOR_REPRO_TEST=1, two release builds), the whole package.
set -euo pipefail

readonly MAX_GLIBC="2.28"
readonly ZIG_TARGET="x86_64-unknown-linux-gnu.${MAX_GLIBC}"
readonly RUST_TARGET="x86_64-unknown-linux-gnu"
# Pinned so every machine builds with the same linker; bump deliberately.
readonly ZIG_PINS="ziglang==0.17.1 cargo-zigbuild==0.24.1"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

out="dist/pat-rotator.zip"
skip_build=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="${2:?--out needs a path}"; shift 2 ;;
    --skip-build) skip_build=1; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "package.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

die() { echo "package.sh: error: $*" >&2; exit 1; }
log() { echo "package.sh: $*" >&2; }

for f in host.json RotatePat/function.json ProvisionPat/function.json SecretEvent/function.json Status/function.json Cargo.toml; do
  [[ -f "$f" ]] || die "missing $f (run from a pat-rotator checkout)"
done
command -v python3 >/dev/null || die "python3 is required"

target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
binary="$target_dir/$RUST_TARGET/release/pat-rotator"

if [[ "$skip_build" -eq 0 ]]; then
  # --- toolchain: repo-local virtualenv with pinned zig + cargo-zigbuild (idempotent) ---
  venv="$repo_root/.venv-zig"
  stamp="$venv/.pins"
  if [[ ! -x "$venv/bin/cargo-zigbuild" || ! -f "$stamp" || "$(cat "$stamp")" != "$ZIG_PINS" ]]; then
    log "installing $ZIG_PINS into .venv-zig"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $ZIG_PINS
    echo "$ZIG_PINS" > "$stamp"
  fi
  # cargo-zigbuild finds zig through `python3 -m ziglang`: put the venv first on PATH.
  export PATH="$venv/bin:$PATH"

  # No build path in the binary: map them to fixed names. The target directory usually
  # sits inside the checkout; the later, more specific mapping wins in rustc and clang.
  cargo_home="${CARGO_HOME:-$HOME/.cargo}"
  maps=("$repo_root=/build/pat-rotator" "$cargo_home=/cargo" "$target_dir=/build/target" "$venv=/build/zig")
  rustflags=()
  [[ -n "${RUSTFLAGS:-}" ]] && read -r -a rustflags <<<"$RUSTFLAGS"
  cflags="${CFLAGS:-}"
  for m in "${maps[@]}"; do
    rustflags+=("--remap-path-prefix=$m")
    cflags+=" -ffile-prefix-map=$m"
  done
  # CARGO_ENCODED_RUSTFLAGS (0x1f-separated) keeps paths with spaces intact.
  CARGO_ENCODED_RUSTFLAGS="$(IFS=$'\x1f'; echo "${rustflags[*]}")"
  export CARGO_ENCODED_RUSTFLAGS
  unset RUSTFLAGS
  export CFLAGS="${cflags# }" CXXFLAGS="${cflags# }"
  export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-946684800}"

  nice_cmd=(nice -n 19)
  [[ "${PACKAGE_NICE:-1}" == "0" ]] && nice_cmd=()
  log "building release binary for $ZIG_TARGET (this is a slow, fully optimised build)"
  "${nice_cmd[@]}" cargo zigbuild --release --target "$ZIG_TARGET" --bin pat-rotator
fi
[[ -f "$binary" ]] || die "binary not found at $binary"

# --- verify the binary: x86-64 ELF, and the newest GLIBC symbol version it needs ---
elf_header="$(od -An -tx1 -N4 "$binary" | tr -d ' \n')"
[[ "$elf_header" == "7f454c46" ]] || die "$binary is not an ELF file"
if command -v objdump >/dev/null; then
  machine="$(objdump -f "$binary" | sed -n 's/.*architecture: \([^,]*\),.*/\1/p')"
  [[ "$machine" == "i386:x86-64" ]] || die "$binary is built for '$machine', expected x86-64"
  if ! symbols="$(objdump -T "$binary" 2>&1)"; then
    # A statically linked binary has no dynamic symbol table, hence no glibc requirement.
    grep -q "not a dynamic object" <<<"$symbols" || { echo "$symbols" >&2; die "objdump -T failed on $binary"; }
    symbols=""
  fi
elif command -v readelf >/dev/null; then
  symbols="$(readelf --dyn-syms -W "$binary")" || die "readelf failed on $binary"
else
  die "objdump or readelf (binutils) is required to check the glibc requirement"
fi
needed_glibc="$(grep -o 'GLIBC_[0-9][0-9.]*' <<<"$symbols" | sed 's/^GLIBC_//' | sort -u -V | tail -n 1 || true)"
if [[ -z "$needed_glibc" ]]; then
  needed_glibc="none"
  log "the binary references no versioned glibc symbols"
else
  newest="$(printf '%s\n%s\n' "$needed_glibc" "$MAX_GLIBC" | sort -V | tail -n 1)"
  if [[ "$newest" != "$MAX_GLIBC" ]]; then
    echo "package.sh: error: pat-rotator needs GLIBC_$needed_glibc, newer than the allowed $MAX_GLIBC." >&2
    echo "package.sh: symbols needing it:" >&2
    grep "GLIBC_$needed_glibc" <<<"$symbols" | head -n 20 >&2
    exit 1
  fi
fi

# --- assemble the zip (python zipfile: explicit modes, fixed timestamps, fixed order) ---
mkdir -p "$(dirname "$out")"
tmp_zip="$(mktemp "${out}.XXXXXX")"
trap 'rm -f "$tmp_zip"' EXIT
python3 - "$tmp_zip" "$binary" <<'PY'
import os, sys, time, zipfile
dest, binary = sys.argv[1], sys.argv[2]
epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "946684800"))  # 2000-01-01T00:00:00Z
stamp = time.gmtime(max(epoch, 315532800))[:6]                   # zip cannot go before 1980
entries = [
    ("host.json", "host.json", 0o644),
    ("ProvisionPat/function.json", "ProvisionPat/function.json", 0o644),
    ("RotatePat/function.json", "RotatePat/function.json", 0o644),
    ("SecretEvent/function.json", "SecretEvent/function.json", 0o644),
    ("Status/function.json", "Status/function.json", 0o644),
    ("pat-rotator", binary, 0o755),
]
with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
    for arcname, src, mode in entries:
        info = zipfile.ZipInfo(arcname, date_time=stamp)
        info.create_system = 3                     # unix, so external_attr carries the mode
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(src, "rb") as fh:
            zf.writestr(info, fh.read())
# Read it back: exact file list, executable binary, JSON files parse.
import json
with zipfile.ZipFile(dest) as zf:
    names = sorted(zf.namelist())
    want = sorted(e[0] for e in entries)
    assert names == want, f"zip content {names} != {want}"
    mode = (zf.getinfo("pat-rotator").external_attr >> 16) & 0o777
    assert mode == 0o755, f"pat-rotator mode is {oct(mode)}"
    for n in names:
        if n.endswith(".json"):
            json.loads(zf.read(n))
    assert json.loads(zf.read("host.json"))["customHandler"]["description"]["defaultExecutablePath"] == "pat-rotator"
PY
chmod 644 "$tmp_zip"
mv -f "$tmp_zip" "$out"
trap - EXIT

size_bytes="$(wc -c <"$out" | tr -d ' ')"
binary_bytes="$(wc -c <"$binary" | tr -d ' ')"
sha="$(sha256sum "$out" | cut -d' ' -f1)"
echo "package: $out"
echo "zip size: $size_bytes bytes ($(( (size_bytes + 1023) / 1024 )) KiB); binary $binary_bytes bytes"
echo "required glibc: $needed_glibc (maximum allowed $MAX_GLIBC)"
echo "sha256: $sha"
