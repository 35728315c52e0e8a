%% @doc Test and debug hooks of llama_nif: library-wide counters, a wait for servers to be
%% freed, and the checkout's default model. Not part of the API.
-module(llama_nif_debug).
-export([info/0, wait_servers/2, default_model_path/0]).

%% @doc Library-wide counters: servers (created and not yet freed) and normal_scheduler:
%% calls of our code on normal schedulers and the longest one (CPU and wall time, µs), in
%% all and under `sites', one entry per NIF without a dirty flag and per resource callback.
%% A site's `cpu_us' counts its calls by CPU time: `[{1, N0}, {2, N1}, {4, N2}, ...,
%% {infinity, N}]', each N the calls under that bound and at or over the one before.
-spec info() -> #{servers := non_neg_integer(), normal_scheduler := map(), atom() => term()}.
info() ->
    llama_nif:nif_info().

%% @doc Waits until at most N servers are alive (freeing is asynchronous after GC).
-spec wait_servers(non_neg_integer(), non_neg_integer()) -> boolean() | {error, llama_nif:reason()}.
wait_servers(N, TimeoutMs) ->
    llama_nif:nif_wait_servers(N, TimeoutMs).

%% @doc $LLAMA_MODEL, else the default model of the checkout llama_nif was built from.
-spec default_model_path() -> binary().
default_model_path() ->
    case os:getenv("LLAMA_MODEL") of
        V when V =:= false; V =:= "" ->
            Root = filename:dirname(resolve(llama_nif:priv_dir())),
            unicode:characters_to_binary(
              filename:join([Root, "models", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"]));
        V ->
            unicode:characters_to_binary(V)
    end.

%% rebar3 and mix link _build/*/lib/llama_nif/priv to the checkout's priv/
resolve(Dir) ->
    case file:read_link(Dir) of
        {ok, Target} -> filename:absname(Target, filename:dirname(Dir));
        {error, _} -> Dir
    end.
