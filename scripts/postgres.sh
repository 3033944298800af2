#!/usr/bin/env bash
# Builds one PostgreSQL major from a source tree you provide into a prefix of
# its own, with everything the test suite needs, so that
#   scripts/test.sh --pg-config PREFIX/bin/pg_config
# can run carm_deleg's whole suite on that major (.ci/run does it for every
# major it finds under the prefix root, see below).
#
# Usage: scripts/postgres.sh /path/to/postgres-src PREFIX [/path/to/pgtap-src]
#
#   postgres-src  a checkout of https://github.com/postgres/postgres at a
#                 release tag (REL_16_*, REL_17_*, REL_18_*), or an unpacked
#                 release tarball.  carm_deleg is tested with 16.14, 17.10
#                 and 18.4.  The source you give is not modified: the
#                 build happens in a directory of its own (VPATH).
#   PREFIX        where to install.  The convention the CI script follows is
#                 /opt/carm-pg/MAJOR (e.g. /opt/carm-pg/17); CARM_PG_ROOT
#                 changes the root.  Any other prefix works with --pg-config.
#   pgtap-src     a checkout of https://github.com/theory/pgtap (a release
#                 tag, 1.3.x; tested with v1.3.4); default: $PGTAP_SRC.
#                 pgTAP is installed into the prefix (pg_prove, the client,
#                 comes from Debian and works with any server major).
#
# What gets installed into PREFIX: the server and client programs (pg_dump,
# pg_upgrade, pgbench, ...), the PGXS headers and makefiles, and the PGXS test
# drivers the suite runs: pgxs/src/test/regress/pg_regress and
# pgxs/src/test/isolation/{pg_isolation_regress,isolationtester} (the same
# places as in Debian's postgresql-server-dev-15), and pgTAP.  PostgreSQL's
# configure puts share/, lib/ and include/ under a "postgresql" subdirectory
# when the prefix does not name it (PREFIX/lib/postgresql/pgxs, ...): ask
# PREFIX/bin/pg_config, as the test scripts do.  The test suite uses no
# contrib module.
#
# Nothing of PostgreSQL or pgTAP is kept in this repository.  A git checkout
# has no generated parser files, so the build needs bison and flex (installed
# from Debian when missing, with the other -dev packages configure wants).
# A build takes about 10 minutes on two cores; it runs under nice.
set -euo pipefail

usage="usage: scripts/postgres.sh /path/to/postgres-src PREFIX [/path/to/pgtap-src]"
src=${1:?$usage}
prefix=${2:?$usage}
pgtap=${3:-${PGTAP_SRC:-}}
src=$(cd "$src" && pwd)
[ -f "$src/configure" ] && [ -f "$src/src/backend/postmaster/postmaster.c" ] ||
  { echo "postgres.sh: $src is not a PostgreSQL source tree" >&2; exit 2; }
[ -z "$pgtap" ] || [ -f "$pgtap/pgtap.control" ] ||
  { echo "postgres.sh: $pgtap is not a pgTAP source tree" >&2; exit 2; }
[ -n "$pgtap" ] ||
  echo "postgres.sh: warning: no pgTAP source given; the pgTAP tests will fail on this prefix" >&2

version=$(sed -n 's/^AC_INIT(\[PostgreSQL\], \[\([^]]*\)\].*/\1/p' "$src/configure.ac")
echo "postgres.sh: PostgreSQL $version into $prefix"

need=()
for p in gcc make bison flex perl pkg-config libreadline-dev zlib1g-dev libssl-dev \
         libicu-dev libxml2-dev libtap-parser-sourcehandler-pgtap-perl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

build=$(mktemp -d /tmp/pg-build.XXXXXX)
trap 'rm -rf "$build"' EXIT
jobs=${JOBS:-$(nproc)}
cd "$build"
# --enable-cassert is left out on purpose: the suite (and bench/hot.sh) should
# see the same server a DBA runs.  --enable-debug only adds symbols.
nice -n 10 "$src/configure" --prefix="$prefix" --enable-debug --with-openssl \
  --with-icu --with-libxml >configure.log 2>&1 || { tail -20 configure.log >&2; exit 1; }
# `make install` installs src/test/regress (pg_regress) and src/test/isolation
# (pg_isolation_regress, isolationtester) into PGXS/src/test/ too.
nice -n 10 make -j"$jobs" -s >make.log 2>&1 || { grep -E 'error|Error' make.log | head -20 >&2; exit 1; }
make -s install >install.log 2>&1 || { tail -20 install.log >&2; exit 1; }
pgxs=$(dirname "$(dirname "$("$prefix/bin/pg_config" --pgxs)")")   # PGXS/src
for f in regress/pg_regress isolation/pg_isolation_regress isolation/isolationtester; do
  [ -x "$pgxs/test/$f" ] ||
    { echo "postgres.sh: $pgxs/test/$f was not installed" >&2; exit 1; }
done
echo "postgres.sh: installed $("$prefix/bin/pg_config" --version)"

if [ -n "$pgtap" ]; then
  cp -a "$pgtap" "$build/pgtap"
  make -C "$build/pgtap" -s PG_CONFIG="$prefix/bin/pg_config" >pgtap.log 2>&1 &&
  make -C "$build/pgtap" -s PG_CONFIG="$prefix/bin/pg_config" install >>pgtap.log 2>&1 ||
    { tail -20 pgtap.log >&2; exit 1; }
  echo "postgres.sh: installed pgTAP $(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$pgtap/pgtap.control")"
fi
