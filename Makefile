# `make all` is what CI runs: format check, lint, type check, tests, the container image.
PY ?= .venv/bin/python
VENV_STAMP := .venv/.installed
RUN_STAMP := .venv/.runtime

.PHONY: all install test ha faults lint fmt typecheck run demo bench compose-check container-check systemd-check clean

all: lint test container-check

$(VENV_STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(VENV_STAMP) $(RUN_STAMP)

# What running needs and nothing more (no dev tools): `make demo` on a fresh clone; an
# up-to-date dev install has it all already. -qq: errors only (no build-backend banners,
# no notes about the machine's pip configuration).
$(RUN_STAMP): pyproject.toml
	@if [ $(VENV_STAMP) -nt pyproject.toml ]; then touch $(RUN_STAMP); exit 0; fi; \
	test -x $(PY) || { echo "[make] creating .venv"; python3 -m venv .venv; }; \
	echo "[make] installing registryd and its runtime dependencies into .venv"; \
	$(PY) -m pip install -qq --disable-pip-version-check -e . && touch $(RUN_STAMP)

install: $(VENV_STAMP)

# Two passes: most tests three at a time (they mostly wait on the broker; one file per
# worker), then the fault matrix, the failovers and the soak one at a time, since they
# time recoveries and start private clusters (-s prints each case's line).
test: $(VENV_STAMP)
	$(PY) -m pytest -q -n 3 --dist loadfile -m "not faults and not ha and not soak"
	$(PY) -m pytest -q -s -m "faults or ha or soak"

# The high-availability tests alone (`make test` runs them too): private Sentinel sets,
# Redis Clusters, a RabbitMQ cluster and registryd replicas; each failover prints its line.
ha: $(VENV_STAMP)
	$(PY) -m pytest -m ha -s -q

# The fault matrix alone (issue 10; `make test` runs it too): each case prints its line.
faults: $(VENV_STAMP)
	$(PY) -m pytest -m faults -s -q tests/faults

lint: $(VENV_STAMP) compose-check systemd-check
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy
	.venv/bin/lint-imports --no-cache

fmt: $(VENV_STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

typecheck: $(VENV_STAMP)
	$(PY) -m mypy

run: $(VENV_STAMP)
	.venv/bin/registryd serve

# Starts a daemon in the background, runs the demo against it, stops it, deletes what it
# made (scripts/demo.sh). Installs the runtime only: the dev tools come with `make test`.
demo: $(RUN_STAMP)
	@bash scripts/demo.sh

# The suite: every path beside its floor measured in the same run, 1,000 to 100,000
# workers, and Buildbot's SQLite connector (bench/suite.py, bench/RESULTS.md); then a
# Buildbot master through registryd against its own SQL tables (bench/bench_buildbot.py);
# RPC throughput with one, two and three registryd replicas (bench/replicas.py).
bench: $(VENV_STAMP)
	$(PY) -m bench.suite
	$(PY) -m bench.bench_buildbot
	$(PY) -m bench.replicas

# 1,000 and 10,000 workers, few repetitions (about two minutes): what CI runs.
.PHONY: bench-quick
bench-quick: $(VENV_STAMP)
	$(PY) -m bench.suite --quick

compose-check: $(VENV_STAMP)
	.venv/bin/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	.venv/bin/hadolint Dockerfile && echo "Dockerfile: ok"

# Builds the image with podman (no registry: a debootstrap base) and runs it against the
# local RabbitMQ and Redis; .ci/run installs podman, runc and debootstrap first.
container-check: $(VENV_STAMP)
	bash scripts/check-container.sh

systemd-check: $(VENV_STAMP)
	bash scripts/check-systemd.sh

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
