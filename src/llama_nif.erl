%% @doc Erlang API of llama_nif: llama.cpp's server core (slots, continuous batching, prompt
%% cache, chat templates) inside the VM, as the NIF priv/llama_nif.so.
%%
%% ```
%% {ok, Server} = llama_nif:init_server(#{n_parallel => 4, n_ctx => 2048}),
%% ok = llama_nif:load_model(Server, "models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", #{}),
%% {ok, Session} = llama_nif:create_session(Server, #{system_prompt => <<"Be brief.">>}),
%% {ok, Task} = llama_nif:create_task(Server, Session, "chat",
%%                                    #{messages => [#{role => user, content => <<"Hi">>}]}),
%% {ok, Result} = llama_nif:get_result(Server, Task, 30000).
%% '''
%%
%% Arguments. Configs and inputs are maps (atom or binary keys; binaries are strings, lists
%% are arrays, true/false/null atoms, other atoms strings), JSON binaries, JSON strings
%% (chardata), or null/undefined for "{}". Task types are atoms, binaries or strings.
%% Bad input gives `{error, {Code, Detail}}', Code an atom named after the C error code
%% (invalid_argument, session_not_found, timeout, cancelled, ...); nothing raises.
%%
%% Results. A task's result is sent to the process that created it, as
%% `{llama_done, TaskId, Result}' or `{llama_error, TaskId, {Code, Detail}}', preceded for
%% a streaming task by `{llama_chunk, TaskId, Chunk}' messages. get_result/3 is a receive
%% on those. Results are maps with binary keys (JSON null is `null'), or with
%% `#{format => json}' the JSON binary. Task ids are unique in the VM.
%%
%% Processes. The tasks of a process that exits are cancelled. Sessions live until
%% close_session/2 or the server's end, unless created with `#{close_on_exit => true}':
%% then they are closed when their owner (the caller, or `owner => Pid') exits.
%% A server is freed by destroy_server/1 or when its last reference is garbage-collected;
%% tasks in flight then end with `{llama_error, Id, {cancelled, _}}'.
%%
%% Schedulers. Calls that parse JSON, render chat templates, take the core's lock or load
%% a model run on dirty schedulers; waiting is a receive, so any number of waiting tasks pins
%% no scheduler. Generation runs on the core's own threads: on a small machine give it fewer
%% threads (n_threads) than cores, or its spinning workers compete with the schedulers.
-module(llama_nif).

-export([init_server/1, load_model/2, load_model/3, destroy_server/1,
         create_session/2, create_session/3, close_session/2,
         create_task/4, create_task/5, stream_task/4, stream_task/5,
         get_result/3, next_chunk/2, collect_stream/2, cancel_task/2,
         status/1, status/2, session_info/2, session_info/3,
         info/0, wait_servers/2, default_model_path/0]).

-export_type([server/0, session_id/0, task_id/0, reason/0, json_arg/0]).

-on_load(load_nif/0).

-opaque server() :: reference().
-type session_id() :: non_neg_integer().   % 0: no session (stateless task)
-type task_id() :: pos_integer().
-type reason() :: {atom(), binary()}.
-type json_arg() :: map() | binary() | string() | null | undefined.
-type task_type() :: completion | chat | embedding | rerank | binary() | string().

-define(MAX_TIMEOUT, 4294967295).
-define(is_timeout(T), (T =:= infinity orelse (is_integer(T) andalso T >= 0 andalso T =< ?MAX_TIMEOUT))).

%%% ---- server -------------------------------------------------------------------------

%% @doc Creates a server. Config: the C API's server config (n_parallel, n_ctx, n_batch,
%% n_threads, ...) plus two keys of this API: model (a path: the model is loaded now, as
%% load_model/3 would) and model_config.
-spec init_server(json_arg()) -> {ok, server()} | {error, reason()}.
init_server(Config) when is_map(Config) ->
    %% a path is often a string (a list): make it a binary, or it would be a JSON array
    C = maps:map(fun(K, V) when (K =:= model orelse K =:= <<"model">>), is_list(V) ->
                         case to_binary(V) of {ok, B} -> B; error -> V end;
                    (_, V) -> V
                 end, Config),
    nif_init_server(C);
init_server(Config) ->
    with_json(Config, "server config", fun(C) -> nif_init_server(C) end).

-spec load_model(server(), file:name_all()) -> ok | {error, reason()}.
load_model(Server, Path) ->
    load_model(Server, Path, #{}).

%% @doc Loads a GGUF model (runs on a dirty I/O scheduler; about a second for 0.5B).
-spec load_model(server(), file:name_all(), json_arg()) -> ok | {error, reason()}.
load_model(Server, Path, ModelConfig) ->
    case to_binary(Path) of
        {ok, P} -> with_json(ModelConfig, "model config", fun(C) -> nif_load_model(Server, P, C) end);
        error -> bad(<<"model path must be a binary or a string">>)
    end.

%% @doc Stops and frees the server now; tasks in flight end as cancelled.
-spec destroy_server(server()) -> ok | {error, reason()}.
destroy_server(Server) ->
    nif_destroy_server(Server).

%%% ---- sessions -----------------------------------------------------------------------

-spec create_session(server(), json_arg()) -> {ok, session_id()} | {error, reason()}.
create_session(Server, Config) ->
    create_session(Server, Config, #{}).

%% @doc Options: close_on_exit (default false): close the session when its owner exits;
%% owner (default self()): that process.
-spec create_session(server(), json_arg(), map() | list()) -> {ok, session_id()} | {error, reason()}.
create_session(Server, Config, Opts) ->
    case options(Opts, #{close_on_exit => false, owner => self()}) of
        {ok, #{close_on_exit := Close, owner := Owner}} when is_boolean(Close), is_pid(Owner) ->
            Own = case Close of true -> Owner; false -> undefined end,
            with_json(Config, "session config", fun(C) -> nif_create_session(Server, C, Own) end);
        {ok, _} -> bad(<<"close_on_exit must be a boolean and owner a pid">>);
        {error, _} = E -> E
    end.

-spec close_session(server(), session_id()) -> ok | {error, reason()}.
close_session(Server, SessionId) ->
    nif_close_session(Server, SessionId).

%%% ---- tasks --------------------------------------------------------------------------

%% @doc Queues a task in a session (0: none); its result comes as a message to the caller.
-spec create_task(server(), session_id(), task_type(), json_arg()) -> {ok, task_id()} | {error, reason()}.
create_task(Server, SessionId, Type, Input) ->
    create_task(Server, SessionId, Type, Input, #{}).

%% @doc Options: stream (default: the input's "stream" key, else false): send
%% {llama_chunk, Id, Chunk} messages; format: map (default) | json; null: the atom for JSON
%% null (default null).
-spec create_task(server(), session_id(), task_type(), json_arg(), map() | list()) ->
    {ok, task_id()} | {error, reason()}.
create_task(Server, SessionId, Type, Input, Opts) ->
    case options(Opts, #{stream => undefined, format => map, null => null}) of
        {ok, #{stream := S, format := F, null := N}} ->
            case to_binary(Type) of
                {ok, T} ->
                    with_json(Input, "task input", fun(I) -> nif_create_task(Server, SessionId, T, I, S, F, N) end);
                error ->
                    bad(<<"task type must be an atom, a binary or a string">>)
            end;
        {error, _} = E -> E
    end.

%% @doc create_task with stream => true.
-spec stream_task(server(), session_id(), task_type(), json_arg()) -> {ok, task_id()} | {error, reason()}.
stream_task(Server, SessionId, Type, Input) ->
    stream_task(Server, SessionId, Type, Input, #{}).

-spec stream_task(server(), session_id(), task_type(), json_arg(), map() | list()) ->
    {ok, task_id()} | {error, reason()}.
stream_task(Server, SessionId, Type, Input, Opts) when is_map(Opts) ->
    create_task(Server, SessionId, Type, Input, Opts#{stream => true});
stream_task(Server, SessionId, Type, Input, Opts) when is_list(Opts) ->
    create_task(Server, SessionId, Type, Input, [{stream, true} | Opts]);
stream_task(_, _, _, _, _) ->
    bad(<<"options must be a map or a proplist">>).

%% @doc Waits up to Timeout ms (or infinity; 0 only looks, unlike the C API where 0 waits
%% forever) for the result of a task this process created. On timeout the task goes on: ask
%% again later, or cancel it. For a streaming task the chunks stay in the mailbox (use
%% next_chunk/2 or collect_stream/2).
-spec get_result(server(), task_id(), timeout()) -> {ok, term()} | {error, reason()}.
get_result(Server, TaskId, Timeout) when ?is_timeout(Timeout) ->
    receive
        {llama_done, TaskId, Result} -> {ok, Result};
        {llama_error, TaskId, Reason} -> {error, Reason}
    after 0 ->
        case task_known(Server, TaskId) of
            true -> wait_result(TaskId, Timeout);
            not_owner ->
                bad(iolist_to_binary(["task ", integer_to_list(TaskId), " was created by another process: "
                                      "its result is sent there"]));
            Gone when Gone =:= false; Gone =:= destroyed ->
                %% the final message is sent before the task is forgotten: look once more
                receive
                    {llama_done, TaskId, Result} -> {ok, Result};
                    {llama_error, TaskId, Reason} -> {error, Reason}
                after 0 ->
                    case Gone of
                        destroyed -> bad(<<"the server was destroyed">>);
                        false -> {error, {task_not_found, iolist_to_binary(
                                   ["no task ", integer_to_list(TaskId), " for this process on this server "
                                    "(never created, already fetched, or created by another process)"])}}
                    end
                end;
            {error, _} = E -> E
        end
    end;
get_result(_Server, _TaskId, _Timeout) ->
    bad(<<"timeout must be infinity or an integer in 0..4294967295 (ms)">>).

%% A normal-scheduler NIF that never waits for a lock; when it would, the dirty twin does.
task_known(Server, TaskId) ->
    case nif_task_known(Server, TaskId) of
        busy -> nif_task_known_dirty(Server, TaskId);
        Known -> Known
    end.

wait_result(TaskId, Timeout) ->
    receive
        {llama_done, TaskId, Result} -> {ok, Result};
        {llama_error, TaskId, Reason} -> {error, Reason}
    after Timeout ->
        {error, {timeout, iolist_to_binary(["task ", integer_to_list(TaskId), " not finished after ",
                                            integer_to_list(Timeout), " ms; it goes on, fetch it later"])}}
    end.

%% @doc The next message of a streaming task: {chunk, Chunk} | {done, Result} |
%% {error, Reason}; {error, {timeout, _}} when nothing came within Timeout ms.
-spec next_chunk(task_id(), timeout()) -> {chunk, term()} | {done, term()} | {error, reason()}.
next_chunk(TaskId, Timeout) when ?is_timeout(Timeout) ->
    receive
        {llama_chunk, TaskId, Chunk} -> {chunk, Chunk};
        {llama_done, TaskId, Result} -> {done, Result};
        {llama_error, TaskId, Reason} -> {error, Reason}
    after Timeout ->
        {error, {timeout, <<"no stream message within the timeout">>}}
    end;
next_chunk(_, _) ->
    bad(<<"timeout must be infinity or an integer in 0..4294967295 (ms)">>).

%% @doc All chunks and the result of a streaming task (Timeout per message).
-spec collect_stream(task_id(), timeout()) -> {ok, [term()], term()} | {error, reason(), [term()]}.
collect_stream(TaskId, Timeout) ->
    collect_stream(TaskId, Timeout, []).

collect_stream(TaskId, Timeout, Acc) ->
    case next_chunk(TaskId, Timeout) of
        {chunk, C} -> collect_stream(TaskId, Timeout, [C | Acc]);
        {done, R} -> {ok, lists:reverse(Acc), R};
        {error, Reason} -> {error, Reason, lists:reverse(Acc)}
    end.

%% @doc Stops a task; its creator gets {llama_error, TaskId, {cancelled, _}}.
-spec cancel_task(server(), task_id()) -> ok | {error, reason()}.
cancel_task(Server, TaskId) ->
    nif_cancel_task(Server, TaskId).

%%% ---- status -------------------------------------------------------------------------

-spec status(server()) -> {ok, term()} | {error, reason()}.
status(Server) ->
    status(Server, #{}).

%% @doc Slots, queue, totals and model. Options: format, null (as for create_task/5).
-spec status(server(), map() | list()) -> {ok, term()} | {error, reason()}.
status(Server, Opts) ->
    case options(Opts, #{format => map, null => null}) of
        {ok, #{format := F, null := N}} -> nif_status(Server, F, N);
        {error, _} = E -> E
    end.

-spec session_info(server(), session_id()) -> {ok, term()} | {error, reason()}.
session_info(Server, SessionId) ->
    session_info(Server, SessionId, #{}).

-spec session_info(server(), session_id(), map() | list()) -> {ok, term()} | {error, reason()}.
session_info(Server, SessionId, Opts) ->
    case options(Opts, #{format => map, null => null}) of
        {ok, #{format := F, null := N}} -> nif_session_info(Server, SessionId, F, N);
        {error, _} = E -> E
    end.

%% @doc Library-wide counters: servers (created and not yet freed) and normal_scheduler
%% (calls of our code on normal schedulers, and the longest one, in CPU and wall time).
-spec info() -> map().
info() ->
    nif_info().

%% @doc Waits until at most N servers are alive (freeing is asynchronous after GC).
-spec wait_servers(non_neg_integer(), non_neg_integer()) -> boolean() | {error, reason()}.
wait_servers(N, TimeoutMs) ->
    nif_wait_servers(N, TimeoutMs).

%% @doc $LLAMA_MODEL, else the default model of the checkout this module was built from.
-spec default_model_path() -> binary().
default_model_path() ->
    case os:getenv("LLAMA_MODEL") of
        V when V =:= false; V =:= "" ->
            Root = filename:dirname(resolve(priv_dir())),
            unicode:characters_to_binary(
              filename:join([Root, "models", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"]));
        V ->
            unicode:characters_to_binary(V)
    end.

%%% ---- helpers ------------------------------------------------------------------------

bad(Detail) ->
    {error, {invalid_argument, Detail}}.

%% Config and input arguments: maps and binaries go to the NIF as they are; strings
%% (chardata) become binaries here (the BIF yields on long ones).
with_json(Arg, What, Fun) ->
    case json_arg(Arg) of
        {ok, A} -> Fun(A);
        error -> bad(iolist_to_binary([What, " must be a map, a JSON binary or string, or null"]))
    end.

json_arg(M) when is_map(M) -> {ok, M};
json_arg(B) when is_binary(B) -> {ok, B};
json_arg(A) when A =:= null; A =:= undefined; A =:= nil -> {ok, null};
json_arg(L) when is_list(L) -> to_binary(L);
json_arg(_) -> error.

to_binary(A) when is_atom(A) -> {ok, atom_to_binary(A, utf8)};
to_binary(B) when is_binary(B) -> {ok, B};
to_binary(L) when is_list(L) ->
    try unicode:characters_to_binary(L) of
        B when is_binary(B) -> {ok, B};
        _ -> error
    catch
        _:_ -> error
    end;
to_binary(_) -> error.

%% Options: a map or a proplist ({K, V} or a bare atom for true), checked against Defaults.
options(Opts, Defaults) when is_list(Opts) ->
    try maps:from_list([case O of {K, V} -> {K, V}; K when is_atom(K) -> {K, true} end || O <- Opts]) of
        M -> options(M, Defaults)
    catch
        _:_ -> bad(<<"options must be a map or a proplist">>)
    end;
options(Opts, Defaults) when is_map(Opts) ->
    case [K || K <- maps:keys(Opts), not is_map_key(K, Defaults)] of
        [] -> {ok, maps:merge(Defaults, Opts)};
        [K | _] -> bad(iolist_to_binary(io_lib:format("unknown option ~0p", [K])))
    end;
options(_, _) ->
    bad(<<"options must be a map or a proplist">>).

priv_dir() ->
    case code:priv_dir(?MODULE) of
        {error, bad_name} ->
            %% not in an application dir (escript, erl -pa): next to ebin/ or the source
            Beam = code:which(?MODULE),
            filename:join(filename:dirname(filename:dirname(Beam)), "priv");
        Dir ->
            Dir
    end.

%% rebar3 and mix link _build/*/lib/llama_nif/priv to the checkout's priv/
resolve(Dir) ->
    case file:read_link(Dir) of
        {ok, Target} -> filename:absname(Target, filename:dirname(Dir));
        {error, _} -> Dir
    end.

load_nif() ->
    Path = case os:getenv("LLAMA_NIF_SO") of
               V when V =:= false; V =:= "" -> filename:join(priv_dir(), "llama_nif");
               V -> filename:rootname(V)
           end,
    case erlang:load_nif(Path, 0) of
        %% on a CPU below the library's baseline the module does not load, with the reason
        %% ({error, {not_supported, Why}}, logged in full), and the VM stays up
        ok ->
            case nif_cpu_check() of
                ok -> ok;
                {error, {_, Why}} = Error ->
                    logger:error("llama_nif cannot run on this CPU: ~ts", [Why]),
                    Error
            end;
        Error ->
            Error
    end.

%%% ---- NIF stubs (replaced when priv/llama_nif.so loads) ------------------------------

-define(NIF, erlang:nif_error({not_loaded, ?MODULE})).
nif_cpu_check() -> ?NIF.
nif_init_server(_) -> ?NIF.
nif_load_model(_, _, _) -> ?NIF.
nif_destroy_server(_) -> ?NIF.
nif_create_session(_, _, _) -> ?NIF.
nif_close_session(_, _) -> ?NIF.
nif_create_task(_, _, _, _, _, _, _) -> ?NIF.
nif_cancel_task(_, _) -> ?NIF.
nif_task_known(_, _) -> ?NIF.
nif_task_known_dirty(_, _) -> ?NIF.
nif_status(_, _, _) -> ?NIF.
nif_session_info(_, _, _, _) -> ?NIF.
nif_info() -> ?NIF.
nif_wait_servers(_, _) -> ?NIF.
