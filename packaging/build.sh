#!/usr/bin/env bash
# Build the .deb and .rpm into packaging/out/ (see README "Install").
#
# The binary is a static musl build when the x86_64-unknown-linux-musl target can be
# installed (rustup) and musl-gcc is there (Debian: musl-tools): it runs on any x86_64
# Linux, including EL8 (glibc 2.28) and SLES 15 (glibc 2.31). When the musl target cannot
# be installed (toolchain downloads are not guaranteed everywhere) it falls back to the
# glibc build, declares the real glibc floor (the highest GLIBC_x.y symbol version the
# binary needs) in both packages and says so loudly: such an rpm is for EL9+ only.
# packaging/out/BUILD-INFO records which one was built; the install tests check it.
#
# CLOUDVIP_PACKAGE_GNU=1 forces the glibc fallback.
# Needs: cargo-deb, cargo-generate-rpm (cargo install --locked), gzip, objdump or readelf.
set -euo pipefail
cd "$(dirname "$0")/.."
MUSL=x86_64-unknown-linux-musl
OUT=packaging/out
TARGET_DIR=${CARGO_TARGET_DIR:-target}
mkdir -p "$OUT"
rm -f "$OUT"/*.deb "$OUT"/*.rpm "$OUT"/BUILD-INFO

kind=musl
if ! rustup target list --installed 2>/dev/null | grep -qx "$MUSL"; then
    rustup target add "$MUSL" >/dev/null 2>&1 || kind=gnu
fi
command -v musl-gcc >/dev/null || kind=gnu
# CLOUDVIP_PACKAGE_GNU=1 takes the fallback on purpose (to test it).
[ "${CLOUDVIP_PACKAGE_GNU:-0}" = 1 ] && kind=gnu

# The rpm wants gzipped man pages (cargo-deb gzips by itself).
gzip -9nc packaging/ocf_rust_cloudvip.7 > "$OUT/ocf_rust_cloudvip.7.gz"
gzip -9nc packaging/cloudvip.8 > "$OUT/cloudvip.8.gz"

if [ "$kind" = musl ]; then
    cargo build --release --locked --target "$MUSL"
    bin="$TARGET_DIR/$MUSL/release/cloudvip"
    cargo deb --no-build --target "$MUSL" -o "$OUT/"
    # Static: nothing to require but what the metadata lists.
    cargo generate-rpm --target "$MUSL" --auto-req disabled -o "$OUT/"
    floor="none (static musl binary)"
else
    echo "build.sh: WARNING: the $MUSL target is not available: building against glibc;" >&2
    echo "build.sh: WARNING: the packages need the glibc floor below (not EL8 / SLES 15)" >&2
    cargo build --release --locked
    bin="$TARGET_DIR/release/cloudvip"
    floor=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
    # The gnu variant's Depends is cargo-deb's $auto: libc6 (>= the floor).
    cargo deb --no-build --variant gnu -o "$OUT/"
    cargo generate-rpm --auto-req builtin -o "$OUT/"
fi
{
    echo "kind=$kind"
    echo "binary='$bin'"
    echo "glibc_floor='$floor'"
} > "$OUT/BUILD-INFO"
echo "== built ($kind; glibc floor: $floor)"
ls -l "$OUT"/*.deb "$OUT"/*.rpm
