# ReAge: `make test` runs every check, `make serve` opens the filter,
# `make train` trains the shipped model, `make bench` measures speed.
DATA ?= ../shared/data/utkface-part1
CC ?= gcc
BUILD := build
ARCH ?= -march=native
CFLAGS ?= -O3 $(ARCH)
CFLAGS += -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -fopenmp -Isrc -Isrc/third_party
LDLIBS := -lm

# Native sgemm: Debian's oneDNN (measured fastest here: its AVX-512 kernels;
# OpenBLAS is pinned to Haswell kernels on some machines), else OpenBLAS (its
# OpenMP flavour, sharing our thread pool), else the portable blocked kernel.
# `make bench` prints the backend it measured.
OPENBLAS_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
OPENBLAS_INC := /usr/include/x86_64-linux-gnu/openblas-openmp
SGEMM ?= $(if $(wildcard /usr/include/dnnl.h),onednn,$(if $(wildcard $(OPENBLAS_INC)/cblas.h),openblas,blocked))
ifeq ($(SGEMM),onednn)
  CFLAGS += -DREAGE_DNNL
  LDLIBS += -ldnnl
else ifeq ($(SGEMM),openblas)
  CFLAGS += -DREAGE_OPENBLAS -I$(OPENBLAS_INC)
  LDLIBS += -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) -lopenblas
endif

ENGINE := src/parallel.c src/sgemm.c src/conv_dnnl.c src/kernels.c src/layers.c src/params.c src/blob.c src/model_config.c src/net_parts.c src/generator.c src/discriminator.c src/estimator.c src/bundle.c src/calibration.c src/photo.c src/facedetect.c src/facemesh.c src/facespace.c src/facespace_mean.c src/pyramid.c src/prototypes.c src/face_change.c src/pipeline.c src/change_render.c src/change_net.c src/structured.c
NATIVE := $(ENGINE) src/fileio.c src/image.c src/dataset.c src/landmark_set.c src/train_config.c src/trainer.c src/train_files.c
HEADERS := $(wildcard src/*.h src/third_party/*.h)
TESTS := tests/test_main.c tests/gradcheck.c tests/test_layers.c tests/test_models.c \
         tests/test_blob.c tests/test_images.c tests/test_training.c tests/test_facedetect.c tests/test_prototypes.c tests/test_structured.c

.PHONY: page-models all test deps train train-change bench eval calibrate clean web wasm-fresh serve landmarks face-space prototypes test-asan fuzz fuzz-run
all: $(BUILD)/reage-train $(BUILD)/reage weights/blazeface.blob weights/facemesh.blob

$(BUILD):
	mkdir -p $(BUILD)

$(BUILD)/reage-train: src/train_main.c $(NATIVE) $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS) -o $@ src/train_main.c $(NATIVE) $(LDLIBS)

$(BUILD)/reage: src/reage_main.c $(NATIVE) $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS) -o $@ src/reage_main.c $(NATIVE) $(LDLIBS)

$(BUILD)/reage-render: tools/eval/render.c $(NATIVE) $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS) -o $@ tools/eval/render.c $(NATIVE) $(LDLIBS)

$(BUILD)/reage-calibrate: tools/calibrate.c $(NATIVE) $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS) -o $@ tools/calibrate.c $(NATIVE) $(LDLIBS)

$(BUILD)/reage-parity: tests/parity_native.c $(NATIVE) $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS) -o $@ tests/parity_native.c $(NATIVE) $(LDLIBS)

# The face detector: MediaPipe's BlazeFace short-range weights, from the
# pinned npm package, converted to the engine's blob format (committed, so
# that make serve needs no npm; rebuilt when the package is newer).
FACE_TFLITE := node_modules/@mediapipe/face_detection/face_detection_short_range.tflite
FACE_PKG_VERSION = $(shell node -p "require('./node_modules/@mediapipe/face_detection/package.json').version" 2>/dev/null)
$(BUILD)/reage-tflite: tools/tflite_convert.c $(ENGINE) src/fileio.c $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS) -o $@ tools/tflite_convert.c $(ENGINE) src/fileio.c $(LDLIBS)

# The face mesh: Face Mesh's landmark network, from the pinned npm package's
# packed assets, converted the same way (weights/facemesh.blob, committed).
MESH_PKG := node_modules/@mediapipe/face_mesh
MESH_ASSETS := $(MESH_PKG)/face_mesh_solution_packed_assets.data
MESH_PKG_VERSION = $(shell node -p "require('./$(MESH_PKG)/package.json').version" 2>/dev/null)
weights/facemesh.blob: $(wildcard $(MESH_ASSETS)) | $(BUILD)
	@test -f $(MESH_ASSETS) || npm ci --no-audit --no-fund
	$(MAKE) $(BUILD)/reage-tflite
	node tools/packed_asset.mjs $(MESH_PKG) face_landmark.tflite $(BUILD)/face_landmark.tflite
	$(BUILD)/reage-tflite --source "@mediapipe/face_mesh $(MESH_PKG_VERSION) face_landmark.tflite" $(BUILD)/face_landmark.tflite $@

# Weight blobs with int8 kernels (tools/compact.c); and the page's two halves
# of the shipped model: what every photo needs, and the generator, which the
# page fetches only for a face the mesh cannot trace.
$(BUILD)/reage-compact: tools/compact.c src/blob.c src/fileio.c $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS) -o $@ tools/compact.c src/blob.c src/fileio.c -lm

PAGE_MODELS := $(BUILD)/page/reage-core.blob $(BUILD)/page/reage-generator.blob
$(BUILD)/page/reage-core.blob: weights/reage.blob $(BUILD)/reage-compact
	@mkdir -p $(BUILD)/page
	$(BUILD)/reage-compact weights/reage.blob $@ --without gen.
$(BUILD)/page/reage-generator.blob: weights/reage.blob $(BUILD)/reage-compact
	@mkdir -p $(BUILD)/page
	$(BUILD)/reage-compact weights/reage.blob $@ --only gen.
page-models: $(PAGE_MODELS)

$(BUILD)/reage-landmarks: tools/landmarks.c $(NATIVE) $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS) -o $@ tools/landmarks.c $(NATIVE) $(LDLIBS)

# The face meshes of every photo of the whole UTKFace set, cached in
# runs/landmarks/ (about 6 minutes on two cores), and the face space's mean
# shape measured from them (src/facespace_mean.c, committed).
MESH_DATA ?= ../shared/data/utkface
landmarks: $(BUILD)/reage-landmarks weights/facemesh.blob
	$(BUILD)/reage-landmarks --data $(MESH_DATA)

face-space: landmarks
	node tools/packed_asset.mjs $(MESH_PKG) geometry_pipeline_metadata_landmarks.binarypb $(BUILD)/face_geometry.binarypb
	$(BUILD)/reage-landmarks --data $(MESH_DATA) --face-space src/facespace_mean.c --geometry $(BUILD)/face_geometry.binarypb

# The age prototypes (src/prototypes.h), measured from the train split of
# MESH_DATA's photos and their cached meshes, written into PROTO_BLOB (the
# shipped blob by default; its strengths are kept), with a picture of them in
# build/prototypes.png.
PROTO_BLOB ?= weights/reage.blob
$(BUILD)/reage-prototypes: tools/prototypes.c $(NATIVE) $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS) -o $@ tools/prototypes.c $(NATIVE) $(LDLIBS)

$(BUILD)/reage-train-change: tools/train_change.c $(NATIVE) $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS) -o $@ tools/train_change.c $(NATIVE) $(LDLIBS)

prototypes: $(BUILD)/reage-prototypes landmarks
	$(BUILD)/reage-prototypes --weights $(PROTO_BLOB) --data $(MESH_DATA) --out $(PROTO_BLOB) --picture build/prototypes.png

$(BUILD)/reage-template: tools/measure_template.c $(NATIVE) $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS) -o $@ tools/measure_template.c $(NATIVE) $(LDLIBS)

weights/blazeface.blob: $(wildcard $(FACE_TFLITE)) | $(BUILD)
	@test -f $(FACE_TFLITE) || npm ci --no-audit --no-fund
	$(MAKE) $(BUILD)/reage-tflite
	$(BUILD)/reage-tflite --source "@mediapipe/face_detection $(FACE_PKG_VERSION) face_detection_short_range.tflite" $(FACE_TFLITE) $@
	cp /usr/share/common-licenses/Apache-2.0 weights/mediapipe.LICENSE

# The browser engine: a standalone WebAssembly module with SIMD, wrapped by
# web/reage.js. Needs Debian's emscripten (installed here when run as root).
WASM_SRC := src/parallel.c src/sgemm.c src/kernels.c src/layers.c src/params.c src/blob.c src/model_config.c src/net_parts.c src/generator.c src/discriminator.c src/estimator.c src/bundle.c src/calibration.c src/photo.c src/facedetect.c src/facemesh.c src/facespace.c src/facespace_mean.c src/pyramid.c src/prototypes.c src/face_change.c src/pipeline.c src/change_render.c src/change_net.c src/structured.c src/wasm_api.c
EMCC_FLAGS := -O3 -msimd128 -std=c11 -Isrc -sSTANDALONE_WASM --no-entry -sALLOW_MEMORY_GROWTH=1 \
              -sINITIAL_MEMORY=67108864 -sMAXIMUM_MEMORY=2147483648
# The committed web/reage.wasm is what the page serves and the tests load;
# `make web` rebuilds it, and `make test` fails when it differs from a fresh
# build of the sources (build/reage.wasm), so that no test runs a stale engine.
$(BUILD)/reage.wasm: $(WASM_SRC) $(HEADERS) | $(BUILD)
	@command -v emcc >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q emscripten) >/dev/null; \
	  else echo "building the engine needs Emscripten: sudo apt-get install emscripten"; exit 1; fi; }
	NODE_PATH=/usr/share/nodejs emcc $(EMCC_FLAGS) -o $@.tmp.wasm $(WASM_SRC) && mv $@.tmp.wasm $@

# The same engine with threads, for pages that may share memory (cross-origin
# isolated): the memory is shared and imported, and web/reage.js starts
# helper threads on it; web/reage.wasm stays the fallback.
EMCC_MT_FLAGS := $(EMCC_FLAGS) -matomics -mbulk-memory -sIMPORTED_MEMORY -Wl,--shared-memory
# (after the single-threaded one, whose recipe installs Emscripten where it is missing)
$(BUILD)/reage-mt.wasm: $(WASM_SRC) $(HEADERS) | $(BUILD)/reage.wasm
	NODE_PATH=/usr/share/nodejs emcc $(EMCC_MT_FLAGS) -o $@.tmp.wasm $(WASM_SRC) && mv $@.tmp.wasm $@

web: $(BUILD)/reage.wasm $(BUILD)/reage-mt.wasm
	cp $(BUILD)/reage.wasm web/reage.wasm.tmp && mv web/reage.wasm.tmp web/reage.wasm
	cp $(BUILD)/reage-mt.wasm web/reage-mt.wasm.tmp && mv web/reage-mt.wasm.tmp web/reage-mt.wasm

wasm-fresh: $(BUILD)/reage.wasm $(BUILD)/reage-mt.wasm
	@for w in reage reage-mt; do cmp -s $(BUILD)/$$w.wasm web/$$w.wasm || { \
	  echo "web/$$w.wasm is not what the sources build: run make web and commit it"; exit 1; }; done

# The filter in the browser, on the shipped weights.
serve:
	@test -f web/reage.wasm -a -f web/reage-mt.wasm || $(MAKE) web
	@test -f weights/reage.blob || { echo "weights/reage.blob is missing: train with make train, or check out the repository's weights"; exit 1; }
	@command -v node >/dev/null || { echo "make serve needs Node.js (apt-get install nodejs)"; exit 1; }
	@$(MAKE) -s $(PAGE_MODELS)
	node tools/serve.js

$(BUILD)/reage-bench: tools/bench_native.c $(NATIVE) $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS) -o $@ tools/bench_native.c $(NATIVE) $(LDLIBS)

$(BUILD)/test_engine: $(TESTS) $(NATIVE) $(HEADERS) tests/*.h | $(BUILD)
	$(CC) $(CFLAGS) -o $@ $(TESTS) $(NATIVE) $(LDLIBS)

# Installs what the build and the tests need when run as root (CI, a fresh
# Debian 12 machine); elsewhere names the packages to install.
APT_PACKAGES := $(if $(wildcard /usr/include/dnnl.h),,libdnnl-dev) $(if $(shell command -v emcc),,emscripten) \
                $(if $(wildcard /usr/bin/chromium),,chromium) $(if $(shell command -v npm),,npm)
deps:
	@if [ -n "$(strip $(APT_PACKAGES))" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing $(strip $(APT_PACKAGES)) ..."; \
	    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PACKAGES)) >/dev/null; \
	  else echo "note: please install $(strip $(APT_PACKAGES)) (sudo apt-get install ...)"; fi; \
	fi
	@test -d node_modules/playwright-core || npm ci --no-audit --no-fund

test: deps
	$(MAKE) $(BUILD)/test_engine $(BUILD)/reage $(BUILD)/reage-train $(BUILD)/reage-calibrate $(BUILD)/reage-prototypes $(BUILD)/reage-train-change $(BUILD)/reage-landmarks $(BUILD)/reage-render $(BUILD)/reage-parity $(BUILD)/reage-tflite $(BUILD)/reage-compact $(PAGE_MODELS) weights/blazeface.blob weights/facemesh.blob
	$(MAKE) wasm-fresh
	REAGE_TEST_DATA=$(DATA) $(BUILD)/test_engine
	REAGE_TEST_DATA=$(DATA) node --test tests/

# The C test suite under AddressSanitizer and UndefinedBehaviorSanitizer
# (gcc's), with leak detection; tests/ubsan.supp names the one known
# third-party report.
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer
$(BUILD)/test_engine_asan: $(TESTS) $(NATIVE) $(HEADERS) tests/*.h | $(BUILD)
	$(CC) $(SAN_FLAGS) $(filter-out -O3,$(CFLAGS)) -o $@ $(TESTS) $(NATIVE) $(LDLIBS)

test-asan: deps $(BUILD)/test_engine_asan
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=tests/ubsan.supp \
	  REAGE_TEST_DATA=$(DATA) $(BUILD)/test_engine_asan

# libFuzzer targets (clang, with AddressSanitizer and UndefinedBehaviorSanitizer):
# image decoding, the blob readers, the .tflite reader and converters, the
# photo pipeline, the browser's entry points. `make fuzz` builds them;
# `make fuzz-run` runs each from its seeds (tests/fuzz/seeds/, which keep every
# crash found as a regression) for a fixed number of inputs from a fixed
# random seed, about a minute each on two cores, so that a run is repeatable
# (FUZZ_SECONDS caps each; FUZZ_SEED=0 draws a new seed).
FUZZ_TARGETS := image blob tflite photo wasm_args
FUZZ_RUNS_image := 250000
FUZZ_RUNS_blob := 80000
FUZZ_RUNS_tflite := 200000
FUZZ_RUNS_photo := 150
FUZZ_RUNS_wasm_args := 400
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 120
FUZZ_SEED ?= 1
FUZZ_FLAGS := -O1 -g -std=c11 -D_POSIX_C_SOURCE=200809L -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
              -fno-omit-frame-pointer -Wno-unknown-pragmas -Isrc -Isrc/third_party $(filter -D% -I%,$(CFLAGS))
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(NATIVE) src/wasm_api.c tools/tflite_convert.c $(HEADERS)
	@mkdir -p $(BUILD)/fuzz
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz needs clang: apt-get install clang libclang-rt-14-dev"; exit 1; }
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(NATIVE) $(if $(findstring wasm_args,$@),src/wasm_api.c) $(LDLIBS)

fuzz: $(addprefix $(BUILD)/fuzz/fuzz_,$(FUZZ_TARGETS))

fuzz-run: fuzz weights/blazeface.blob weights/facemesh.blob
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(BUILD)/fuzz/corpus-$$t && cp tests/fuzz/seeds/$$t/* $(BUILD)/fuzz/corpus-$$t/ 2>/dev/null; \
	  if [ $$t = tflite ]; then cp $(FACE_TFLITE) $(BUILD)/face_landmark.tflite $(BUILD)/fuzz/corpus-$$t/ 2>/dev/null; fi; \
	  runs=$$(case $$t in image) echo $(FUZZ_RUNS_image);; blob) echo $(FUZZ_RUNS_blob);; tflite) echo $(FUZZ_RUNS_tflite);; \
	         photo) echo $(FUZZ_RUNS_photo);; *) echo $(FUZZ_RUNS_wasm_args);; esac); \
	  echo "fuzzing $$t: $$runs inputs (at most $(FUZZ_SECONDS) s) ..."; \
	  $(BUILD)/fuzz/fuzz_$$t -seed=$(FUZZ_SEED) -runs=$$runs -max_total_time=$(FUZZ_SECONDS) -max_len=262144 -rss_limit_mb=4096 -malloc_limit_mb=1024 -print_final_stats=1 \
	    -artifact_prefix=$(BUILD)/fuzz/crash-$$t- $(BUILD)/fuzz/corpus-$$t 2>&1 | \
	    grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)|runtime error|deadly" || true; \
	  if ls $(BUILD)/fuzz/crash-$$t-* >/dev/null 2>&1; then echo "fuzz_$$t crashed: $$(ls $(BUILD)/fuzz/crash-$$t-*)"; exit 1; fi; \
	done

bench: deps $(BUILD)/reage-bench $(BUILD)/reage-parity $(PAGE_MODELS)
	@if ! /usr/bin/python3 -c "import torch" 2>/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-torch) >/dev/null; fi
	tools/bench.sh

# The shipped weights judged by an external model (tools/eval/judge.mjs), on
# the test split of the whole UTKFace set:
# prints the table, writes weights/eval.json, weights/eval-faces.json (per face) and weights/eval-grid.jpg.
EVAL_DATA ?= ../shared/data/utkface
eval: deps $(BUILD)/reage-render
	node tools/eval/judge.mjs --data $(EVAL_DATA)

# The shipped model's recipe from scratch (its option schedule included);
# `build/reage-train --out runs/shipped --resume` continues it.
train: $(BUILD)/reage-train
	$(BUILD)/reage-train --config shipped --data $(DATA) --out runs/shipped

# The change net on the prototypes' results (tools/train_change.c), from the
# shipped blob, on MESH_DATA's train split and its landmark cache; the same
# line again resumes it.
train-change: $(BUILD)/reage-train-change landmarks
	$(BUILD)/reage-train-change --weights weights/reage.blob --data $(MESH_DATA) --run runs/change --out runs/change/reage.blob

# A trained blob's age calibration (tools/calibrate.c), fitted on the train
# split with the blob's own estimator and written into a copy: how a blob
# from runs/ becomes the shipped one.
CAL_FROM ?= runs/shipped/reage.blob
CAL_TO ?= weights/reage.blob
calibrate: $(BUILD)/reage-calibrate
	$(BUILD)/reage-calibrate --weights $(CAL_FROM) --data $(DATA) --out $(CAL_TO)

clean:
	rm -rf $(BUILD)
