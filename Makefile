# ti - convenience wrappers around CMake/ctest. The real build is CMakeLists.txt.
#
#   make test        install missing Debian packages (as root), build (CUDA too when nvcc is
#                    present, warnings are errors), run the whole test suite; then build the
#                    CPU-only configuration without OpenBLAS and oneDNN (-DTI_CUDA=OFF
#                    -DTI_OPENBLAS=OFF -DTI_DNNL=OFF: the built-in GEMM and convolutions, as on a
#                    GPU machine without Debian's -dev packages) and run its fast tests
#   make demo        same set-up, then textual inversion of a held-out concept on the shipped tiny
#                    model: 5 images -> ti-train -> 100 samples each of the new word and the init
#                    word -> the classifier's rates (scripts/demo.sh, docs/DEMO.md)
#   make test-asan   the cpu-labelled tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench       benchmarks (not tests); results go to docs/PERF.md by hand
#   make fuzz        libFuzzer harnesses (clang) for the file readers, FUZZ_SECONDS each
#   make format      clang-format every C/CUDA source (make test checks it: format-check)
#   make tidy        clang-tidy (bugprone, clang-analyzer) over the C sources; not in make test
BUILD      ?= build
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=
FUZZ_SECONDS ?= 60

.PHONY: all deps build demo test test-cpu-only test-asan bench fuzz format format-check tidy clean

all: build

deps:
	@scripts/deps.sh

build: deps
	cmake -S . -B $(BUILD) -DTI_WERROR=ON $(CMAKE_ARGS)
	cmake --build $(BUILD) -j$(JOBS)

demo: build
	scripts/demo.sh $(BUILD)

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 1800
	$(MAKE) test-cpu-only
	$(MAKE) format-check

test-cpu-only: deps
	cmake -S . -B $(BUILD)-cpu -DTI_CUDA=OFF -DTI_OPENBLAS=OFF -DTI_DNNL=OFF -DTI_WERROR=ON $(CMAKE_ARGS)
	cmake --build $(BUILD)-cpu -j$(JOBS)
	cd $(BUILD)-cpu && ctest --output-on-failure -L cpu -LE slow --timeout 1800

test-asan: deps
	cmake -S . -B $(BUILD)-asan -DTI_CUDA=OFF -DTI_WERROR=ON -DCMAKE_BUILD_TYPE=Debug \
	      -DTI_SANITIZE=address,undefined $(CMAKE_ARGS)
	cmake --build $(BUILD)-asan -j$(JOBS)
	cd $(BUILD)-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    ctest --output-on-failure -L cpu -LE slow --timeout 3600

bench: build
	@scripts/deps.sh --bench
	cmake --build $(BUILD) -j$(JOBS) --target ti_benchmarks
	scripts/bench.sh $(BUILD) | tee $(BUILD)/bench.md

fuzz:
	@scripts/deps.sh --fuzz
	CC=clang cmake -S . -B $(BUILD)-fuzz -DTI_CUDA=OFF -DTI_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
	      -DTI_SANITIZE=address,undefined $(CMAKE_ARGS)
	cmake --build $(BUILD)-fuzz -j$(JOBS)
	scripts/fuzz.sh $(BUILD)-fuzz $(FUZZ_SECONDS)

format:
	scripts/format.sh

format-check: deps
	scripts/format.sh --check

tidy: deps
	@scripts/deps.sh --tidy
	cmake -S . -B $(BUILD)-cpu -DTI_CUDA=OFF -DTI_OPENBLAS=OFF -DTI_DNNL=OFF -DTI_WERROR=ON $(CMAKE_ARGS)
	scripts/tidy.sh $(BUILD)-cpu

clean:
	rm -rf $(BUILD) $(BUILD)-cpu $(BUILD)-asan $(BUILD)-fuzz
