# Shared shell helpers for the test, demo and benchmark drivers (sourced, not run).
#
# Every run works on throw-away state: a private copy of the PostgreSQL
# installation, Debian's 15 or the one --pg-config names (so `make install`
# never touches it and parallel runs cannot overwrite each other's build),
# and clusters in a temporary directory,
# listening only on a unix socket there and on a free loopback port.

PG_BINDIR_SYSTEM=${PG_BINDIR_SYSTEM:-/usr/lib/postgresql/15/bin}
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The PostgreSQL installation the drivers copy: Debian's PostgreSQL 15 unless
# CARM_PG_CONFIG names another one's pg_config (scripts/test.sh --pg-config;
# scripts/postgres.sh builds one major into a prefix, /opt/carm-pg/MAJOR by
# convention).  Only this variable selects it: PG_CONFIG is the private copy's.
CARM_PG_CONFIG=${CARM_PG_CONFIG:-$PG_BINDIR_SYSTEM/pg_config}
export CARM_PG_CONFIG

# as_pg CMD... — run a command as the OS user that owns the clusters
# (PostgreSQL refuses to run as root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_major [PG_CONFIG] — the major version (15, 16, ...) of an installation,
# by default the one the drivers copy.
pg_major() {
  "${1:-$CARM_PG_CONFIG}" --version | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p'
}

# copy_tree DIR — copy the PostgreSQL installation of $CARM_PG_CONFIG under
# DIR (it is relocatable: binaries find share/ and lib/ relative to
# themselves).  Debian's layout (/usr/lib/postgresql/N, /usr/share/postgresql/N,
# headers in /usr/include) is copied under DIR/usr; an installation into a
# prefix of its own (scripts/postgres.sh) is copied whole to DIR/pg.  Sets and
# exports PGBIN and PG_CONFIG.
copy_tree() {
  local dir=$1 bindir prefix major
  bindir=$("$CARM_PG_CONFIG" --bindir) || return 1
  major=$(pg_major)
  if [ "$bindir" = "/usr/lib/postgresql/$major/bin" ]; then
    mkdir -p "$dir/usr/lib/postgresql" "$dir/usr/share/postgresql"
    cp -a "/usr/lib/postgresql/$major" "$dir/usr/lib/postgresql/"
    cp -a "/usr/share/postgresql/$major" "$dir/usr/share/postgresql/"
    ln -sfn /usr/include "$dir/usr/include"
    PGBIN=$dir/usr/lib/postgresql/$major/bin
  else
    prefix=$(dirname "$bindir")
    [ -d "$prefix/bin" ] && [ -x "$prefix/bin/postgres" ] ||
      { echo "copy_tree: no PostgreSQL installation under $prefix" >&2; return 1; }
    mkdir -p "$dir"
    cp -a "$prefix" "$dir/pg"
    PGBIN=$dir/pg/bin
  fi
  chmod 755 "$dir"
  PG_CONFIG=$PGBIN/pg_config
  export PGBIN PG_CONFIG
}

# install_into SRC — build the extension sources in SRC and install them into
# the tree of $PG_CONFIG.  The build happens in a fresh copy of SRC (no
# objects, no .git), so objects compiled for another major, or by a parallel
# run, are never reused.
install_into() {
  local src=$1 build st
  build=$(mktemp -d "${TMPDIR:-/tmp}/carm_build.XXXXXX") || return 1
  tar -C "$src" -cf - --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
      --exclude=test/results --exclude=test/output_iso --exclude=bench/out . |
    tar -C "$build" -xf - &&
  make -C "$build" -s PG_CONFIG="$PG_CONFIG" >/dev/null &&
  make -C "$build" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
  st=$?
  rm -rf "$build"
  return $st
}

# make_tree DIR [SRC] — copy the PostgreSQL installation under DIR, build and
# install the extension there (from SRC, by default this checkout).  Sets
# PGBIN and PG_CONFIG.
make_tree() {
  copy_tree "$1" && install_into "${2:-$TOP}"
}

# free_port — a TCP port nobody listens on.  When CARM_PORT_BASE is set
# (scripts/test.sh --port N, or CARM_PORT: the cluster tests then take the
# ports after the main cluster's), the ports are handed out in order from
# that base, skipping any in use; the next one is kept in the file
# CARM_PORT_FILE, so that successive calls, subshells and scripts included,
# never hand out a port twice.  Otherwise a random free port.
free_port() {
  local p
  if [ -n "${CARM_PORT_BASE:-}" ]; then
    : "${CARM_PORT_FILE:?CARM_PORT_FILE is not set}"
    p=$(cat "$CARM_PORT_FILE" 2>/dev/null) || p=$CARM_PORT_BASE
    [ -n "$p" ] || p=$CARM_PORT_BASE
    local last=$((p + 100))
    while (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; do
      p=$((p + 1))
      [ $p -le 65535 ] && [ $p -lt $last ] || { echo "no free port from $CARM_PORT_BASE" >&2; return 1; }
    done
    echo $((p + 1)) > "$CARM_PORT_FILE"
    echo "$p"; return
  fi
  for p in $(seq 54320 54420 | shuf); do
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port" >&2; return 1
}

# start_cluster DATADIR PORT [postgresql.conf lines...] — initdb and start a
# cluster owned by the postgres OS user, socket in DATADIR/..
start_cluster() {
  local data=$1 port=$2; shift 2
  local sock; sock=$(dirname "$data")
  mkdir -p "$data"; chmod 755 "$sock"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$data" "$sock"
  as_pg "$PGBIN/initdb" -D "$data" -U postgres -A trust --no-sync -E UTF8 --locale=C >/dev/null
  {
    echo "port = $port"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '$sock'"
    echo "fsync = off"
    echo "max_prepared_transactions = 10"
    echo "log_min_messages = warning"
    for line in "$@"; do echo "$line"; done
  } | as_pg tee -a "$data/postgresql.conf" >/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null
}

# stop_cluster DATADIR — stop the cluster we started there (and only it).
stop_cluster() {
  [ -f "$1/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$1" -m fast -w stop >/dev/null 2>&1 || true
}

# pick_ports DIR NAME... — for each named node, a directory DIR/NAME owned by
# the cluster user and a free port of its own, in the global array `port`.
pick_ports() {
  local dir=$1 n p; shift
  declare -gA port
  for n in "$@"; do
    mkdir -p "$dir/$n"; chmod 755 "$dir/$n"; [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/$n"
    p=$(free_port); while [[ " ${port[*]} " == *" $p "* ]]; do p=$(free_port); done
    port[$n]=$p
  done
}

# citus_join DIR COORD WORKER... — the started nodes DIR/COORD and DIR/WORKER…
# (ports from pick_ports, Citus in their shared_preload_libraries) become one
# Citus cluster: the extension on every node, the coordinator in its own
# metadata (carm_deleg runs its once-only triggers on its placements), the
# workers added.
citus_join() {
  local dir=$1 coord=$2 n; shift 2
  for n in "$coord" "$@"; do
    psql -X -q -h "$dir/$n" -p "${port[$n]}" -U postgres -d postgres -v ON_ERROR_STOP=1 \
      -c "CREATE EXTENSION citus" || return 1
  done
  psql -X -q -At -h "$dir/$coord" -p "${port[$coord]}" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "SELECT citus_set_coordinator_host('127.0.0.1', ${port[$coord]})" >/dev/null || return 1
  for n in "$@"; do
    psql -X -q -At -h "$dir/$coord" -p "${port[$coord]}" -U postgres -d postgres -v ON_ERROR_STOP=1 \
      -c "SELECT citus_add_node('127.0.0.1', ${port[$n]})" >/dev/null || return 1
  done
}
