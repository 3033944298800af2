#!/usr/bin/env bash
# Builds Citus from a source tree you provide and installs it into PostgreSQL 15,
# so that test/cluster/citus.sh and bench/citus.sh can run (they skip without it).
#
# Usage: scripts/citus.sh /path/to/citus-src [PG_CONFIG]
#
#   The tree is a checkout of https://github.com/citusdata/citus at tag v13.2.2,
#   the version carm_deleg is tested with (13.x releases support PostgreSQL 15).
#   PG_CONFIG defaults to the system's /usr/lib/postgresql/15/bin/pg_config:
#   the test and bench drivers copy that installation, Citus included.
#
# Nothing of Citus is kept in this repository.  The build happens in a copy of
# the tree (the source you give is not modified), and needs three Debian
# packages besides PGXS: liblz4-dev, libzstd-dev and libkrb5-dev (PostgreSQL
# 15's libpq-be.h includes gssapi.h).  It is configured --without-libcurl
# (curl only serves Citus's anonymous statistics collection).
#
# One build fix, applied to the copy only when it is needed: PostgreSQL 15.14
# and later export have_createdb_privilege() from commands/dbcommands.h, and
# Citus 13.2.2's pg_version_compat.h still defines a static copy of it for
# PostgreSQL 15, which no longer compiles ("static declaration follows
# non-static declaration").  The fix deletes the static copy, so Citus calls
# PostgreSQL's own function, which does the same check.
set -euo pipefail

src=${1:?usage: scripts/citus.sh /path/to/citus-src [PG_CONFIG]}
PG_CONFIG=${2:-/usr/lib/postgresql/15/bin/pg_config}
[ -f "$src/configure" ] && [ -d "$src/src/backend/distributed" ] ||
  { echo "citus.sh: $src is not a Citus source tree" >&2; exit 2; }

version=$(sed -n 's/^AC_INIT(\[Citus\], \[\([^]]*\)\].*/\1/p' "$src/configure.ac")
echo "citus.sh: Citus $version into $("$PG_CONFIG" --version) ($("$PG_CONFIG" --pkglibdir))"
[ "$version" = 13.2.2 ] ||
  echo "citus.sh: warning: carm_deleg is tested with Citus 13.2.2, not $version" >&2

need=()
for p in liblz4-dev libzstd-dev libkrb5-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

build=$(mktemp -d /tmp/citus-build.XXXXXX)
trap 'rm -rf "$build"' EXIT
cp -a "$src/." "$build/"

compat=$build/src/include/pg_version_compat.h
server_inc=$("$PG_CONFIG" --includedir-server)
if grep -q 'extern bool have_createdb_privilege' "$server_inc/commands/dbcommands.h" &&
   grep -q '^have_createdb_privilege(void)' "$compat"; then
  echo "citus.sh: build fix: PostgreSQL exports have_createdb_privilege(); dropping Citus's static copy"
  perl -0pi -e 's/static inline bool\nhave_createdb_privilege\(void\)\n\{.*?\n\}\n//s' "$compat"
  ! grep -q '^have_createdb_privilege(void)' "$compat" ||
    { echo "citus.sh: the build fix did not apply" >&2; exit 1; }
fi

cd "$build"
./configure --without-libcurl PG_CONFIG="$PG_CONFIG" >configure.log 2>&1 ||
  { tail -20 configure.log >&2; exit 1; }
make -j"$(nproc)" >make.log 2>&1 || { grep -E 'error|Error' make.log | head -20 >&2; exit 1; }
SUDO=""; [ "$(id -u)" -eq 0 ] || [ -w "$("$PG_CONFIG" --pkglibdir)" ] || SUDO="sudo"
$SUDO make install >install.log 2>&1 || { tail -20 install.log >&2; exit 1; }
echo "citus.sh: installed Citus $version"
