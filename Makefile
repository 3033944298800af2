# carm_deleg — PGXS build.  The version lives only in carm_deleg.control.
EXTENSION  = carm_deleg
EXTVERSION = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = carm_deleg
OBJS       = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# The install script is assembled from one file per concern (sql/src/NN_*.sql).
# Every file but the header and the tables is replayable (CREATE OR REPLACE),
# so the upgrade from the previous release is its own preamble
# (sql/upgrade/) followed by the same files: one definition per function.
# Released install scripts (sql/carm_deleg--1.0.sql) are kept as shipped.
SQL_SOURCES    = $(sort $(wildcard sql/src/*.sql))
SQL_REPLAYABLE = $(filter-out sql/src/00_header.sql sql/src/10_schema.sql,$(SQL_SOURCES))
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql sql/$(EXTENSION)--1.0--1.1.sql
DATA       = sql/$(EXTENSION)--1.0.sql

REGRESS      = $(sort $(basename $(notdir $(wildcard test/sql/*.sql))))
REGRESS_OPTS = --inputdir=test --outputdir=test
ISOLATION      = $(sort $(basename $(notdir $(wildcard test/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test --outputdir=test

PG_CPPFLAGS = -DCARM_VERSION='"$(EXTVERSION)"' -Isrc
# -Wno-unused-parameter: fmgr and hook signatures fix parameters a function may not use
PG_CFLAGS   = -Wall -Wextra -Wno-unused-parameter -Werror=implicit-function-declaration

EXTRA_CLEAN = $(DATA_built) test/results test/output_iso test/regression.diffs test/regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: $(SQL_SOURCES)
	cat $^ > $@

sql/$(EXTENSION)--1.0--1.1.sql: sql/upgrade/1.0--1.1.sql $(SQL_REPLAYABLE)
	cat $^ > $@

.PHONY: test demo bench
test:
	scripts/test.sh
demo:
	scripts/demo.sh
bench:
	bench/run.sh
