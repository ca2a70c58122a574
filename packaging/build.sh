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
# The .deb comes from cargo-deb, the .rpm from rpmbuild with packaging/rpm/cloudvip.spec
# (the package owns /usr/sbin/cloudvip and has a real description).
# Needs: cargo-deb (cargo install --locked), rpmbuild (Debian: rpm), dpkg-deb,
# dpkg-parsechangelog, gzip, objdump.
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

# What cargo-deb leaves out or gets wrong, fixed in its .deb (dpkg-deb -R, then --build
# with root ownership and the same compression): it writes "Depends:" even for an empty
# list, where no field is right; and it writes no md5sums (dpkg makes them at install,
# lintian and debsums expect them in the package, as dh_md5sums writes them).
finish_deb() {
    local deb=$1 tmp
    tmp=$(mktemp -d)
    dpkg-deb -R "$deb" "$tmp/pkg"
    sed -i -E '/^Depends: *$/d' "$tmp/pkg/DEBIAN/control"
    (cd "$tmp/pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
        | xargs -0 md5sum) > "$tmp/pkg/DEBIAN/md5sums"
    chmod 0644 "$tmp/pkg/DEBIAN/md5sums"
    dpkg-deb --root-owner-group -Zxz --build "$tmp/pkg" "$deb" >/dev/null
    rm -rf "$tmp"
}

# The rpm's %changelog from the Debian changelog's latest entry (one history for both).
rpm_changelog() {
    local cl=packaging/debian/changelog
    printf '* %s %s - %s\n' \
        "$(date -u -d "$(dpkg-parsechangelog -l $cl -S Date)" '+%a %b %d %Y')" \
        "$(dpkg-parsechangelog -l $cl -S Maintainer)" \
        "$(dpkg-parsechangelog -l $cl -S Version)"
    dpkg-parsechangelog -l $cl -S Changes | sed -n -E 's/^  \* /- /p; s/^    /  /p'
}

build_rpm() {
    local bin=$1 autoreq=$2 top version
    version=$(sed -n -E 's/^version = "([^"]+)"/\1/p' Cargo.toml | head -1)
    rpm_changelog > "$OUT/rpm-changelog"
    top=$(mktemp -d)
    rpmbuild -bb --quiet \
        --define "_topdir $top" \
        --define "srcdir $PWD" \
        --define "outdir $PWD/$OUT" \
        --define "bin $PWD/$bin" \
        --define "pkgversion $version" \
        --define "autoreq $autoreq" \
        packaging/rpm/cloudvip.spec
    mv "$top"/RPMS/*/*.rpm "$OUT/"
    rm -rf "$top" "$OUT/rpm-changelog"
}

if [ "$kind" = musl ]; then
    cargo build --release --locked --target "$MUSL"
    bin="$TARGET_DIR/$MUSL/release/cloudvip"
    cargo deb --no-build --target "$MUSL" -o "$OUT/"
    finish_deb "$OUT"/*.deb
    # Static: nothing to require (rpm's generator would still add rtld(GNU_HASH)).
    build_rpm "$bin" no
    floor="none (static musl binary)"
else
    echo "build.sh: WARNING: the $MUSL target is not available: building against glibc;" >&2
    echo "build.sh: WARNING: the packages need the glibc floor below (not EL8 / SLES 15)" >&2
    cargo build --release --locked
    bin="$TARGET_DIR/release/cloudvip"
    floor=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
    # The gnu variant's Depends is cargo-deb's $auto: libc6 (>= the floor).
    cargo deb --no-build --variant gnu -o "$OUT/"
    finish_deb "$OUT"/*.deb
    # rpmbuild's dependency generator requires libc.so.6(GLIBC_x.y) from the binary.
    build_rpm "$bin" yes
fi
{
    echo "kind=$kind"
    echo "binary='$bin'"
    echo "glibc_floor='$floor'"
} > "$OUT/BUILD-INFO"
echo "== built ($kind; glibc floor: $floor)"
ls -l "$OUT"/*.deb "$OUT"/*.rpm
