# Erlang/Elixir section (included by the top Makefile): the NIF priv/llama_nif.so, EUnit and
# ExUnit. Installs Erlang/OTP, rebar3 and Elixir from apt when they are missing (as root).
ERL_APT_PKGS := erlang-nox erlang-dev erlang-eunit rebar3 elixir
# no hex: the project has no dependencies, and hex.pm may be unreachable
MIX_VARS     := MIX_ENV=test HEX_OFFLINE=1 MIX_HOME=$(CURDIR)/.cache/mix

BUILD_EXTRA += llama_nif
TEST_EXTRA  += test-erl test-ex test-nif-py

.PHONY: deps-erl nif test-erl test-ex test-nif-py example-erl dialyzer-erl clean-erl

deps: deps-erl

# a cheap check each time instead of a stamp: the tools may be removed or installed by hand
deps-erl:
	@if ! command -v erl >/dev/null || ! command -v rebar3 >/dev/null || ! command -v mix >/dev/null \
	    || [ -z "$$(erl -noshell -eval 'io:format("~s", [filelib:wildcard(code:root_dir() ++ "/usr/include/erl_nif.h")]), halt().' 2>/dev/null)" ]; then \
	    echo "[llama_nif] installing $(ERL_APT_PKGS) (apt)"; \
	    SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(ERL_APT_PKGS); \
	fi

# A build dir configured before c_src/nif existed, or before Erlang was installed, lacks
# the llama_nif target: configure it again (a fresh build dir is configured by the tool).
.PHONY: nif-configure
build: nif-configure
nif-configure: deps-erl
	@command -v cmake >/dev/null || $(MAKE) deps-py
	@if [ -f build/CMakeCache.txt ] && ! cmake --build build --target help 2>/dev/null | grep -q '^llama_nif:'; then \
	    cmake -S . -B build >/dev/null; \
	fi

# The NIF alone (rebar3's pre-compile hook and mix's compile step call this). The touch makes
# the library the stamp of "built from these sources", so those hooks stay quiet after an
# edit that changed no object (a comment, a CMake file of another build).
nif: deps-erl source nif-configure
	@$(TOOL) build llama_nif && touch priv/llama_nif.so

test-erl: nif model
	rebar3 eunit

test-ex: nif model
	$(MIX_VARS) mix test

# the C API conformance cases that make sense for Erlang, against the NIF through a port
test-nif-py: nif model
	$(PYTEST) py_tests/test_20_nif_conformance.py -v

example-erl: nif model
	escript examples/erlang_usage_pattern.escript

# Dialyzer over src/ (not part of make test): 47 s here the first time, when rebar3 builds
# its PLT of erts, kernel and stdlib (~/.cache/rebar3), 3 s after that (2 cores).
dialyzer-erl: deps-erl
	rebar3 dialyzer

clean-erl:
	rm -rf _build priv/llama_nif.so
