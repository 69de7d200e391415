# Thin wrapper over CMake. `make` builds build/shoal; `make test` runs every test.
BUILD   ?= build
JOBS    ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(CI),true)
CMAKE_FLAGS += -DSHOAL_WERROR=ON
endif

.PHONY: all deps test asan fuzz fuzz-smoke bench demo chaos format clean

all: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

deps:
	@scripts/install-deps.sh

test: all
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

asan: deps
	@cmake -S . -B build-asan -DSHOAL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --test-dir build-asan --output-on-failure -j $(JOBS)

fuzz:
	@scripts/install-deps.sh --fuzz
	@CC=clang cmake -S . -B build-fuzz -DSHOAL_FUZZ=ON -DSHOAL_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

# Short run of every fuzz target (FUZZ_SECONDS each); CI uses it as a smoke test.
fuzz-smoke: fuzz
	scripts/fuzz-run.sh $(or $(FUZZ_SECONDS),60)

bench: all
	@scripts/install-deps.sh --bench
	bench/run.sh

demo: all
	scripts/demo.sh

# Chaos runs, longer than ctest's (docs/reliability.md): each scenario CHAOS_SECONDS with
# CHAOS_CONNECTIONS closed-loop connections, then a soak of `shoal up` for CHAOS_SOAK_SECONDS
# (RSS and fds must stay flat). Every run goes; the target fails if any did. Not part of CI.
CHAOS_SECONDS ?= 120
CHAOS_SOAK_SECONDS ?= 300
CHAOS_CONNECTIONS ?= 16
chaos: all
	@rc=0; \
	for s in gateway up; do \
		python3 tests/integ/chaos_test.py $(BUILD)/shoal $$s --duration $(CHAOS_SECONDS) \
			--connections $(CHAOS_CONNECTIONS) || rc=1; \
	done; \
	python3 tests/integ/chaos_test.py $(BUILD)/shoal soak --of up \
		--duration $(CHAOS_SOAK_SECONDS) --connections $(CHAOS_CONNECTIONS) || rc=1; \
	exit $$rc

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 'fuzz/*.c' 'bench/*.c')

clean:
	rm -rf build build-asan build-fuzz
