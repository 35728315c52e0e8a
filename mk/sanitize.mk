# Sanitizer runs (not part of `make test`: each builds llama.cpp instrumented, and runs slowly).
#   make test-asan: ASan + UBSan over the C API conformance suite (build-asan/)
#   make test-tsan: ThreadSanitizer over the concurrency, cancel and streaming tests (build-tsan/)
# Python is not instrumented, so the sanitizer runtime is preloaded into it; leak checking is
# off (the interpreter's own allocations at exit are not ours).
ASAN_LIB = $(shell gcc -print-file-name=libasan.so)
UBSAN_LIB = $(shell gcc -print-file-name=libubsan.so)
TSAN_LIB = $(shell gcc -print-file-name=libtsan.so)
# the interpreter itself, not a wrapper script (pyenv's shim is bash, which the preloaded
# runtime crashes)
SAN_PY := $(shell $(PY) -c 'import sys; print(sys.executable)')
SAN_PYTEST = PYTHONPATH=$(CURDIR)/python $(SAN_PY) -m pytest -p no:cacheprovider -q
# the suites that drive the library in-process (the others run compilers, qemu or other
# processes, which must not inherit the preloaded runtime)
ASAN_TESTS ?= $(wildcard py_tests/test_0[1-9]_*.py) py_tests/test_12_embeddings.py py_tests/test_13_rerank.py \
              py_tests/test_16_crash_regressions.py py_tests/test_21_tokenize.py py_tests/test_24_huge_pages.py
TSAN_TESTS ?= py_tests/test_05_streaming.py py_tests/test_06_cancel_and_timeouts.py py_tests/test_07_concurrency.py

.PHONY: test-asan test-tsan

test-asan: deps source model
	$(TOOL) build --build-dir build-asan --option LLAMA_NIF_SANITIZE=address --option LLAMA_NIF_BUILD_NIF=OFF llama_server
	LLAMA_SERVER_LIB=$(CURDIR)/build-asan/lib/libllama_server.so LD_PRELOAD="$(ASAN_LIB) $(UBSAN_LIB)" \
	LLAMA_NIF_TEST_SLOWDOWN=5 ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(SAN_PYTEST) $(ASAN_TESTS)

test-tsan: deps source model
	$(TOOL) build --build-dir build-tsan --option LLAMA_NIF_SANITIZE=thread --option LLAMA_NIF_BUILD_NIF=OFF llama_server
	LLAMA_SERVER_LIB=$(CURDIR)/build-tsan/lib/libllama_server.so LD_PRELOAD="$(TSAN_LIB)" \
	LLAMA_NIF_TEST_SLOWDOWN=20 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	    $(SAN_PYTEST) $(TSAN_TESTS)
