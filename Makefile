# carm_deleg — PGXS build.  The version lives only in carm_deleg.control.
EXTENSION  = carm_deleg
EXTVERSION = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = carm_deleg
OBJS       = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# The install script is assembled from one file per concern (sql/src/NN_*.sql).
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA       = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*--*.sql))

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

$(DATA_built): $(sort $(wildcard sql/src/*.sql))
	cat $^ > $@

.PHONY: test demo bench
test:
	scripts/test.sh
demo:
	scripts/demo.sh
bench:
	bench/run.sh
