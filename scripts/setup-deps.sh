#!/usr/bin/env bash
# Install what building and testing cloudvip needs on Debian 12 (idempotent, quick when
# everything is there). Needs root. The Rust toolchain itself (>= 1.89, via rustup) must
# already be installed: Debian 12's own rustc is too old.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "setup-deps.sh: run as root (apt-get, network namespaces)" >&2; exit 1; }
command -v cargo >/dev/null || {
    echo "setup-deps.sh: cargo not found: install Rust >= 1.89 with rustup first" >&2; exit 1; }

# Pacemaker/corosync/pcs for the OCF tools and the cluster tests; resource-agents for
# ocf-tester and ra-api-1.dtd; libxml2-utils for xmllint; iproute2/iputils for the
# namespace tests; time and strace for the benchmark (bench/).
# rpm (rpmbuild), dpkg-dev (dpkg-parsechangelog, dpkg-shlibdeps), lintian, rpmlint, file,
# man-db for the packages and their install tests; musl-tools for the static build
# (packaging/build.sh).
PKGS=(pacemaker pacemaker-cli-utils corosync resource-agents pcs libxml2-utils
      iproute2 iputils-ping iputils-arping procps util-linux tcpdump time strace python3
      python3-pip
      rpm dpkg-dev lintian rpmlint file man-db musl-tools binutils
      fence-agents  # fence_dummy: the cluster tests fence for real (only a Recommends of pacemaker)
      # tests/anchors.rs: Debian's own Google stack for gcp-vpc-move-vip (Recommends of
      # resource-agents, which a --no-install-recommends install leaves out), jq and curl
      # for ocivip, python3-venv for the PyPI stacks below.
      python3-googleapi python3-google-auth python3-google-auth-httplib2 jq curl python3-venv)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup-deps.sh: installing ${missing[*]}"
    # No init system should start the cluster daemons we install (postinst invoke-rc.d).
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    [ $created_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

# Every PyPI client the tests drive lives in a venv under a cache dir (never the system's
# pip), one venv per requirements file, rebuilt only when that file changes: venv-gce
# (google-cloud-compute) and venv-oci (the OCI SDK) for the emulator's conformance tests,
# venv-aws (botocore, boto3, AWS CLI v1) for crates/sim/tests/aws_sdk.rs and
# tests/anchors_aws.rs, venv-google and venv-oci-cli for the anchors (tests/anchors.rs).
ANCHOR_CACHE=${CLOUDVIP_TEST_CACHE:-/opt/cloudvip-test}
for req in tests/anchors/requirements-*.txt crates/sim/tests/requirements-*.txt; do
    [ -e "$req" ] || continue
    name=$(basename "$req" .txt); name=${name#requirements-}
    venv="$ANCHOR_CACHE/venv-$name"
    stamp=$(sha256sum "$req" | cut -d' ' -f1)
    if [ "$(cat "$venv/.cloudvip-stamp" 2>/dev/null)" != "$stamp" ]; then
        echo "setup-deps.sh: building $venv from $req"
        rm -rf "$venv"
        /usr/bin/python3 -m venv "$venv"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
        echo "$stamp" > "$venv/.cloudvip-stamp"
    fi
done
# gcloud for the seed's failover hook in tests/anchors.rs. Neither PyPI nor Debian has it;
# the machine image ships Google's google-cloud-cli package. If it is missing, install it
# from an apt source that offers it, else say so: the test then fails with this reason.
if ! command -v gcloud >/dev/null; then
    if apt-cache policy google-cloud-cli 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq google-cloud-cli >/dev/null
    else
        echo "setup-deps.sh: WARNING: gcloud (google-cloud-cli) is not installed and no" \
             "reachable package source provides it; tests/anchors.rs will fail" >&2
    fi
fi

command -v cargo-nextest >/dev/null || cargo install --locked -q cargo-nextest
command -v cargo-deb >/dev/null || cargo install --locked -q cargo-deb
# The static build's target. Toolchain downloads may be unavailable: build.sh then falls
# back to a glibc build and says so (see README "Install"), so a failure here is not fatal.
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1 \
        || echo "setup-deps.sh: WARNING: cannot add the musl target; packages will be glibc builds" >&2
fi
echo "setup-deps.sh: ready"
