# carm_deleg — PGXS build.  The version lives only in carm_deleg.control.
EXTENSION  = carm_deleg
EXTVERSION = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = carm_deleg
OBJS       = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# Releases are frozen.  Every released script (sql/carm_deleg--X.sql and
# sql/carm_deleg--P--X.sql) is committed and shipped exactly as released; the
# build assembles only the version in progress, the one carm_deleg.control
# names:
#   sql/carm_deleg--NEXT.sql      = every file of sql/src/ (one concern each)
#   sql/carm_deleg--PREV--NEXT.sql = sql/upgrade/PREV--NEXT.sql (what replaying
#                                    cannot do: table changes, moves, drops)
#                                    + every replayable file of sql/src/
# Every file but the header and the tables is replayable (CREATE OR REPLACE),
# so an upgrade re-creates each function exactly as a fresh install does: one
# definition per function.  `make release` freezes the pair (see
# docs/dba.md, Releasing).
SQL_SOURCES    = $(sort $(wildcard sql/src/*.sql))
SQL_REPLAYABLE = $(filter-out sql/src/00_header.sql sql/src/10_schema.sql,$(SQL_SOURCES))
UPGRADE_PREAMBLE = $(wildcard sql/upgrade/*--$(EXTVERSION).sql)
PREVVERSION    = $(patsubst sql/upgrade/%--$(EXTVERSION).sql,%,$(UPGRADE_PREAMBLE))
NEXT_INSTALL   = sql/$(EXTENSION)--$(EXTVERSION).sql
NEXT_UPGRADE   = $(if $(PREVVERSION),sql/$(EXTENSION)--$(PREVVERSION)--$(EXTVERSION).sql)
DATA_built = $(NEXT_INSTALL) $(NEXT_UPGRADE)
DATA       = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*.sql)) \
             $(wildcard sql/$(EXTENSION)--*.control)

# The tests run one way: scripts/test.sh (a private PostgreSQL tree and
# throw-away clusters; pg_regress from test/sql with expected output in
# expected/, isolation specs, pgTAP, cluster tests).  `make test` and
# `make installcheck` both call it; REGRESS/ISOLATION are deliberately not
# set, so PGXS defines no second way to run the suites.

PG_CPPFLAGS = -DCARM_VERSION='"$(EXTVERSION)"' -Isrc
# -Wno-unused-parameter: fmgr and hook signatures fix parameters a function may not use
# CARM_CFLAGS (from the environment or the command line) adds flags: CI sets
# -Werror, and -DUSE_ASSERT_CHECKING for its assertion build (.ci/run).
PG_CFLAGS   = -Wall -Wextra -Wno-unused-parameter -Werror=implicit-function-declaration $(CARM_CFLAGS)

EXTRA_CLEAN = $(DATA_built) test/results test/output_iso test/regression.diffs test/regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every object depends on the shared header (PGXS tracks no header dependencies)
$(OBJS): src/carm_deleg.h

$(NEXT_INSTALL): $(SQL_SOURCES)
	cat $^ > $@

ifneq ($(NEXT_UPGRADE),)
$(NEXT_UPGRADE): $(UPGRADE_PREAMBLE) $(SQL_REPLAYABLE)
	cat $^ > $@
endif

# make release: freeze the version in progress.  Builds its pair and marks
# the files as released (committed, no longer ignored); the next version is
# opened by raising default_version and adding sql/upgrade/THIS--NEXT.sql.
.PHONY: release
release: $(DATA_built)
	@if git -C $(CURDIR) ls-files --error-unmatch $(NEXT_INSTALL) >/dev/null 2>&1; then \
	  echo "$(EXTVERSION) is already released"; exit 1; fi
	sed -i '\|^$(NEXT_INSTALL)$$|d; \|^$(NEXT_UPGRADE)$$|d' .gitignore
	git -C $(CURDIR) add -f $(DATA_built) .gitignore
	@echo "$(EXTVERSION) frozen: commit, then open the next version (carm_deleg.control, sql/upgrade/$(EXTVERSION)--NEXT.sql)"

.PHONY: test installcheck demo bench
test installcheck:
	scripts/test.sh
demo:
	scripts/demo.sh
bench:
	bench/run.sh
