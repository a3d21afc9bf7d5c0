#!/usr/bin/env bash
# install.sh — install cvx on a peer host: the signer and the peer, their systemd units,
# users, directories, default configuration and policy files. Idempotent.
#
#   install/install.sh [--bin-dir DIR] [--uninstall [--purge --yes]]
#
# DESTDIR=/path installs into a staging root (nothing on the host is touched; users are
# created in the staging root's /etc/passwd by systemd-sysusers --root). Without
# --bin-dir, release binaries are built with cargo first.
#
# --uninstall removes what install put in place (binaries, units, sysusers/tmpfiles entries,
# policies, docs) and LEAVES keys, configuration, watermark state, audit logs and the store
# (/etc/cvx-*, /var/lib/cvx-*). --purge --yes removes those too: the watermark and audit
# log are what keep a re-installed signer from signing twice — purge only a retired host.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr}
root="${DESTDIR%/}/"
bin_dir=""
mode=install
purge=no
yes=no

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) [ $# -ge 2 ] || die "--bin-dir needs a directory"; bin_dir=$2; shift 2 ;;
    --uninstall) mode=uninstall; shift ;;
    --purge) purge=yes; shift ;;
    --yes) yes=yes; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ "$purge" = no ] || [ "$mode" = uninstall ] || die "--purge only goes with --uninstall"
[ "$purge" = no ] || [ "$yes" = yes ] || die "--purge deletes keys, watermark state and audit logs; add --yes if you mean it"

BINS="cvx-signer cvx-peer"
UNITS="cvx-signer.socket cvx-signer.service cvx-peer.service"
d_bin="$root${PREFIX#/}/bin"
d_unit="$root${PREFIX#/}/lib/systemd/system"
d_sysusers="$root${PREFIX#/}/lib/sysusers.d"
d_tmpfiles="$root${PREFIX#/}/lib/tmpfiles.d"
d_share="$root${PREFIX#/}/share/cvx"
d_doc="$root${PREFIX#/}/share/doc/cvx"
d_etc_signer="${root}etc/cvx-signer"
d_etc_peer="${root}etc/cvx-peer"
live=no
[ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && live=yes

if [ "$mode" = uninstall ]; then
  if [ "$live" = yes ]; then
    systemctl disable --now cvx-peer.service cvx-signer.service cvx-signer.socket 2>/dev/null || true
  fi
  for b in $BINS; do rm -f "$d_bin/$b"; done
  for u in $UNITS; do rm -f "$d_unit/$u"; done
  rm -f "$d_sysusers/cvx.conf" "$d_tmpfiles/cvx.conf"
  rm -rf "$d_share" "$d_doc"
  if [ "$purge" = yes ]; then
    rm -rf "$d_etc_signer" "$d_etc_peer" "${root}var/lib/cvx-signer" "${root}var/lib/cvx-peer"
    say "purged configuration, keys, watermark state, audit logs and the store"
  else
    say "left in place: /etc/cvx-signer /etc/cvx-peer /var/lib/cvx-signer /var/lib/cvx-peer (keys, config, state, audit logs)"
  fi
  [ "$live" = yes ] && systemctl daemon-reload
  say "uninstalled"
  exit 0
fi

# 1. binaries
if [ -z "$bin_dir" ]; then
  command -v cargo >/dev/null || die "no --bin-dir and no cargo: build elsewhere and pass --bin-dir"
  say "building release binaries"
  # Built one at a time: cargo unifies features across packages built together, and the
  # signer must be built exactly as its own dependency closure says (tests/tests/deps.rs).
  (cd "$repo" && cargo build --release --locked -p cvx-signer && cargo build --release --locked -p cvx-peer)
  bin_dir="$repo/target/release"
fi
for b in $BINS; do
  [ -x "$bin_dir/$b" ] || die "$bin_dir/$b is missing (build with: cargo build --release --locked -p cvx-signer -p cvx-peer)"
done
for b in $BINS; do install -D -m 0755 "$bin_dir/$b" "$d_bin/$b"; done

# 2. units, users, directories
for u in $UNITS; do install -D -m 0644 "$here/systemd/$u" "$d_unit/$u"; done
install -D -m 0644 "$here/sysusers.d/cvx.conf" "$d_sysusers/cvx.conf"
install -D -m 0644 "$here/tmpfiles.d/cvx.conf" "$d_tmpfiles/cvx.conf"

# 3. policy files and documentation
install -D -m 0644 "$repo/policies/signing.toml" "$d_share/policies/signing.toml"
for f in "$repo"/policies/seccomp/*.json; do
  [ -e "$f" ] && install -D -m 0644 "$f" "$d_share/policies/seccomp/$(basename "$f")"
done
for f in operations.md prod-host-setup.md signer.md error-codes.md protocol.md; do
  [ -e "$repo/docs/$f" ] && install -D -m 0644 "$repo/docs/$f" "$d_doc/$f"
done
install -D -m 0644 "$repo/SECURITY.md" "$d_doc/SECURITY.md"

# 4. users (in the staging root with --root) and directories
if command -v systemd-sysusers >/dev/null; then
  if [ -n "$DESTDIR" ]; then
    mkdir -p "${root}etc"
    touch "${root}etc/passwd" "${root}etc/group"
    systemd-sysusers --root="$root" "$d_sysusers/cvx.conf"
  else
    systemd-sysusers "$d_sysusers/cvx.conf"
  fi
else
  say "systemd-sysusers not found: create users cvx-signer and cvx-peer yourself (see $d_sysusers/cvx.conf)"
fi
uid_of() { awk -F: -v u="$1" '$1 == u { print $3 }' "${root}etc/passwd" 2>/dev/null; }
gid_of() { awk -F: -v g="$1" '$1 == g { print $3 }' "${root}etc/group" 2>/dev/null; }
own() { # own USER GROUP PATH: chown where the staging root knows the ids (and we may)
  local u g
  if [ "$1" = root ]; then u=0; else u=$(uid_of "$1"); fi
  g=$(gid_of "$2")
  if [ -n "$u" ] && [ -n "$g" ] && [ "$(id -u)" -eq 0 ]; then chown "$u:$g" "$3"; fi
}
install -d -m 0750 "$d_etc_signer" "$d_etc_peer"
own root cvx-signer "$d_etc_signer"
own root cvx-peer "$d_etc_peer"
install -d -m 0700 "${root}var/lib/cvx-signer" "${root}var/lib/cvx-peer"
own cvx-signer cvx-signer "${root}var/lib/cvx-signer"
own cvx-peer cvx-peer "${root}var/lib/cvx-peer"

# 5. default configuration: written once, never overwritten (idempotent re-runs keep edits)
peer_uid=$(uid_of cvx-peer)
if [ ! -e "$d_etc_signer/signer.toml" ]; then
  cat > "$d_etc_signer/signer.toml" <<CONF
# cvx-signer configuration (docs/signer.md). Unknown fields are an error.
# The network id: 64 hex digits, the SHA-256 of the network's genesis (cvx-peer prints it).
network = "SET-ME: the network id, 64 hex digits"
# The network's genesis, a copy of the peer's (/etc/cvx-peer/genesis.bin): the signer
# checks finality certificates against the stake table it derives from it, so a peer that
# was down or cut off for long recovers by itself (docs/signer.md, "Certificates").
genesis_file = "/etc/cvx-signer/genesis.bin"
state_file = "/var/lib/cvx-signer/state"
audit_log = "/var/lib/cvx-signer/audit.log"
# At start, an audit log past this size is archived read-only beside it (audit.log.FIRST-LAST)
# and continued; keep the archives with your backups (docs/signer.md, "Audit log").
audit_rotate_bytes = 16777216
# The socket comes from cvx-signer.socket (systemd socket activation): no socket = line.
# Only the cvx-peer user may ask for signatures.
allowed_uids = [${peer_uid:-0}]
policy_file = "$PREFIX/share/cvx/policies/signing.toml"

[key]
# The peer key, age-encrypted to the host identity (cvx-vault provision).
file = "/etc/cvx-signer/peer.key.age"
# The host identity arrives as a systemd credential (cvx-signer.service, LoadCredential=).
identity_credential = "cvx-signer-identity"
CONF
  chmod 0640 "$d_etc_signer/signer.toml"
  own root cvx-signer "$d_etc_signer/signer.toml"
fi

if [ "$live" = yes ]; then
  systemd-tmpfiles --create "$d_tmpfiles/cvx.conf"
  systemctl daemon-reload
fi

say "installed into ${root}"
cat <<NEXT
next steps (docs/operations.md, "Installation"):
  1. age-keygen -o /etc/cvx-signer/host.identity; chmod 0400; give its recipient to the vault
  2. on the vault: cvx-vault provision ... --recipient age1... -> /etc/cvx-signer/peer.key.age
  3. copy the genesis to /etc/cvx-peer/genesis.bin and /etc/cvx-signer/genesis.bin (0640);
     set network = in /etc/cvx-signer/signer.toml; sudo -u cvx-signer cvx-signer init --config ...
  4. systemctl enable --now cvx-signer.socket cvx-peer.service
NEXT
