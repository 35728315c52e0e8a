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
%% Events. A task whose end get_result/3, next_chunk/2 or collect_stream/2 takes from the
%% mailbox ends with the event `[llama_nif, task, stop]' (outcome, tokens and the core's
%% timings; the duration when this process created the task): see llama_nif_events.
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
         text/1, chunk_text/1]).
%% for llama_nif_debug (test and debug hooks): not part of the API
-export([nif_info/0, nif_wait_servers/2, priv_dir/0, options/2]).
%% for llama_nif_server: not part of the API
-export([take_end/2]).

-export_type([server/0, session_id/0, task_id/0, task_type/0, error_code/0, reason/0,
              json_arg/0, text/0, task_options/0, result/0, chunk/0]).

-on_load(load_nif/0).

-opaque server() :: reference().
%% A server handle: a NIF resource, freed by destroy_server/1 or by garbage collection.

-type session_id() :: non_neg_integer().
%% A session id; 0 means no session (a stateless task).

-type task_id() :: pos_integer().
%% A task id, unique in the VM.

-type task_type() :: completion | chat | embedding | rerank | tokenize | detokenize | binary() | string().
%% A task type, as an atom, a binary or a string.

-type error_code() :: invalid_argument | out_of_memory | model_load_failed | inference_failed
                    | session_not_found | server_busy | timeout | buffer_too_small
                    | task_not_found | model_not_loaded | cancelled | not_supported | unknown.
%% One atom per error code of the C API.

-type reason() :: {error_code(), binary()}.
%% An error: its code and a message.

-type json_arg() :: map() | binary() | string() | null | undefined.
%% A config or input: a map (atom or binary keys), a JSON binary or string, or
%% `null'/`undefined' for an empty object.

-type text() :: unicode:chardata().
%% Text in an input map: a binary, a string (a list of code points) or iodata.

-type task_options() :: #{stream => boolean(), format => map | json, null => atom(), reply_to => pid()}
                      | [{atom(), term()} | atom()].
%% Options of create_task/5: `stream' (send chunks), `format' (maps or JSON binaries),
%% `null' (the atom for JSON null), `reply_to' (the local process that gets the task's
%% messages and owns the task).

-type result() :: #{binary() => term()} | [#{binary() => term()}] | binary().
%% A result (format map): a chat result has `<<"choices">>' (a list of maps with
%% `<<"message">> := #{<<"content">> := Text}'), `<<"usage">>' and `<<"timings">>'; a
%% completion has `<<"content">>', `<<"tokens_predicted">>', `<<"timings">>' and more;
%% embedding, rerank, tokenize and detokenize results have llama.cpp server's shapes. With
%% format json: the JSON binary.

-type chunk() :: #{binary() => term()} | binary().
%% A stream chunk (format map): a chat chunk has `<<"choices">>' (a list of maps with
%% `<<"delta">>'), a completion chunk `<<"content">>'.

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

%% @equiv load_model(Server, Path, #{})
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

%% @equiv create_session(Server, Config, #{})
-spec create_session(server(), json_arg()) -> {ok, session_id()} | {error, reason()}.
create_session(Server, Config) ->
    create_session(Server, Config, #{}).

%% @doc Opens a session: a conversation whose history the server keeps. Config:
%% system_prompt, keep_history, and task defaults (temperature, stop, ...). Options:
%% close_on_exit (default false): close the session when its owner exits; owner (default
%% self()): that process.
-spec create_session(server(), json_arg(), map() | list()) -> {ok, session_id()} | {error, reason()}.
create_session(Server, Config, Opts) ->
    case options(Opts, #{close_on_exit => false, owner => self()}) of
        {ok, #{close_on_exit := Close, owner := Owner}} when is_boolean(Close), is_pid(Owner) ->
            Own = case Close of true -> Owner; false -> undefined end,
            with_json(Config, "session config", session,
                      fun(C) -> nif_create_session(Server, C, Own) end);
        {ok, _} -> bad(<<"close_on_exit must be a boolean and owner a pid">>);
        {error, _} = E -> E
    end.

%% @doc Closes a session; its tasks in flight end as cancelled.
-spec close_session(server(), session_id()) -> ok | {error, reason()}.
close_session(Server, SessionId) ->
    nif_close_session(Server, SessionId).

%%% ---- tasks --------------------------------------------------------------------------

%% @doc Queues a task in a session (0: none); its result comes as a message to the caller.
-spec create_task(server(), session_id(), task_type(), json_arg()) -> {ok, task_id()} | {error, reason()}.
create_task(Server, SessionId, Type, Input) ->
    create_task(Server, SessionId, Type, Input, #{}).

%% @doc Queues a task in a session (0: none). In an input map, text (prompt, messages'
%% content, system_prompt, stop, query, documents, content, ...) may be a binary, a string
%% or iodata; a prompt of token ids is `{tokens, Ids}'; a list that cannot be text is an
%% invalid_argument error naming the key.
%%
%% Options: stream (default: the input's "stream" key, else false): send
%% {llama_chunk, Id, Chunk} messages; format: map (default) | json; null: the atom for JSON
%% null (default null); reply_to: the local process that gets the task's messages and owns
%% it (default: the caller): its exit cancels the task, and get_result/3 works there only.
%%
%% When the caller receives the task itself and a `[llama_nif, task, stop]' handler is
%% attached (or telemetry loaded), the task's start and type are kept in the caller's process
%% dictionary for its event, until get_result/3 or next_chunk/2 takes its end (at most 1000
%% such tasks per process; see llama_nif_events).
-spec create_task(server(), session_id(), task_type(), json_arg(), task_options()) ->
    {ok, task_id()} | {error, reason()}.
create_task(Server, SessionId, Type, Input, Opts) ->
    case options(Opts, #{stream => undefined, format => map, null => null, reply_to => self()}) of
        {ok, #{reply_to := R}} when not is_pid(R); node(R) =/= node() ->
            bad(<<"reply_to must be a local pid">>);
        {ok, #{stream := S, format := F, null := N, reply_to := R}} ->
            case to_binary(Type) of
                {ok, T} ->
                    Start = erlang:monotonic_time(),
                    case with_json(Input, "task input", T,
                                   fun(I) -> nif_create_task(Server, SessionId, T, I, S, F, N, R) end) of
                        {ok, TaskId} when R =:= self() ->
                            %% for the task's event, when its end is received here
                            Session = case SessionId of 0 -> none; _ -> SessionId end,
                            ok = llama_nif_events:task_started(TaskId, Start, #{type => T, session => Session}),
                            {ok, TaskId};
                        Created ->
                            Created
                    end;
                error ->
                    bad(<<"task type must be an atom, a binary or a string">>)
            end;
        {error, _} = E -> E
    end.

%% @doc create_task with stream => true.
-spec stream_task(server(), session_id(), task_type(), json_arg()) -> {ok, task_id()} | {error, reason()}.
stream_task(Server, SessionId, Type, Input) ->
    stream_task(Server, SessionId, Type, Input, #{}).

%% @doc create_task/5 with `stream => true'.
-spec stream_task(server(), session_id(), task_type(), json_arg(), task_options()) ->
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
%% next_chunk/2 or collect_stream/2). Taking the result emits the task's
%% `[llama_nif, task, stop]' event (llama_nif_events); a timeout emits nothing.
-spec get_result(server(), task_id(), timeout()) -> {ok, result()} | {error, reason()}.
get_result(Server, TaskId, Timeout) when ?is_timeout(Timeout) ->
    case take_end(TaskId, 0) of
        timeout -> get_known_result(Server, TaskId, Timeout);
        Outcome -> Outcome
    end;
get_result(_Server, _TaskId, _Timeout) ->
    bad(<<"timeout must be infinity or an integer in 0..4294967295 (ms)">>).

get_known_result(Server, TaskId, Timeout) ->
    case task_known(Server, TaskId) of
        true ->
            case take_end(TaskId, Timeout) of
                timeout -> {error, {timeout, iolist_to_binary(["task ", integer_to_list(TaskId), " not finished after ",
                                                               integer_to_list(Timeout), " ms; it goes on, fetch it later"])}};
                Outcome -> Outcome
            end;
        not_owner ->
            bad(iolist_to_binary(["task ", integer_to_list(TaskId), " was created by another process: "
                                  "its result is sent there"]));
        Gone when Gone =:= false; Gone =:= destroyed ->
            %% the final message is sent before the task is forgotten: look once more
            case take_end(TaskId, 0) of
                timeout when Gone =:= destroyed -> bad(<<"the server was destroyed">>);
                timeout -> {error, {task_not_found, iolist_to_binary(
                              ["no task ", integer_to_list(TaskId), " for this process on this server "
                               "(never created, already fetched, or created by another process)"])}};
                Outcome -> Outcome
            end;
        {error, _} = E -> E
    end.

%% A normal-scheduler NIF that never waits for a lock; when it would, the dirty twin does.
task_known(Server, TaskId) ->
    case nif_task_known(Server, TaskId) of
        busy -> nif_task_known_dirty(Server, TaskId);
        Known -> Known
    end.

%% @private Takes a task's end ({ok, Result} or {error, Reason}) from this process's mailbox
%% within Timeout ms and emits its event (llama_nif_events); timeout when none came. The one
%% place that receives an end, for get_result/3 and llama_nif_server:await/2.
-spec take_end(task_id(), timeout()) -> {ok, result()} | {error, reason()} | timeout.
take_end(TaskId, Timeout) ->
    receive
        {llama_done, TaskId, Result} -> llama_nif_events:task_ended(TaskId, {ok, Result});
        {llama_error, TaskId, Reason} -> llama_nif_events:task_ended(TaskId, {error, Reason})
    after Timeout -> timeout
    end.

%% @doc The next message of a streaming task: {chunk, Chunk} | {done, Result} |
%% {error, Reason}; {error, {timeout, _}} when nothing came within Timeout ms. The task's
%% end (done or error) emits its `[llama_nif, task, stop]' event (llama_nif_events).
-spec next_chunk(task_id(), timeout()) -> {chunk, chunk()} | {done, result()} | {error, reason()}.
next_chunk(TaskId, Timeout) when ?is_timeout(Timeout) ->
    receive
        {llama_chunk, TaskId, Chunk} -> {chunk, Chunk};
        {llama_done, TaskId, Result} -> _ = llama_nif_events:task_ended(TaskId, {ok, Result}), {done, Result};
        {llama_error, TaskId, Reason} -> llama_nif_events:task_ended(TaskId, {error, Reason})
    after Timeout ->
        {error, {timeout, <<"no stream message within the timeout">>}}
    end;
next_chunk(_, _) ->
    bad(<<"timeout must be infinity or an integer in 0..4294967295 (ms)">>).

%% @doc All chunks and the result of a streaming task (Timeout per message). Its end emits
%% the task's `[llama_nif, task, stop]' event, as next_chunk/2.
-spec collect_stream(task_id(), timeout()) -> {ok, [chunk()], result()} | {error, reason(), [chunk()]}.
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

%% @equiv status(Server, #{})
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

%% @equiv session_info(Server, SessionId, #{})
-spec session_info(server(), session_id()) -> {ok, term()} | {error, reason()}.
session_info(Server, SessionId) ->
    session_info(Server, SessionId, #{}).

%% @doc A session's message and task counts, slot and config. Options: format, null.
-spec session_info(server(), session_id(), map() | list()) -> {ok, term()} | {error, reason()}.
session_info(Server, SessionId, Opts) ->
    case options(Opts, #{format => map, null => null}) of
        {ok, #{format := F, null := N}} -> nif_session_info(Server, SessionId, F, N);
        {error, _} = E -> E
    end.

%%% ---- text out -----------------------------------------------------------------------

%% @doc The generated text of a chat or completion result (a map with binary keys, as
%% get_result/3 gives it): the message content of the first choice of a chat, the content of
%% a completion; `<<>>' when the content is null (e.g. a reply made of tool calls). A stream
%% chunk gives its delta's text, as chunk_text/1. Anything else raises badarg.
-spec text(Result :: map()) -> binary().
text(#{<<"choices">> := [#{<<"message">> := #{<<"content">> := C}} | _]}) -> text_or_empty(C);
text(#{<<"choices">> := [#{<<"delta">> := _} | _]} = Chunk) -> chunk_text(Chunk);
text(#{<<"content">> := C}) when is_binary(C) -> C;
text(Other) -> erlang:error(badarg, [Other]).

%% @doc The text a stream chunk adds: the delta content of a chat chunk, the content of a
%% completion chunk; `<<>>' for a chunk without text (the first chat chunk often carries only
%% the role, the last only the finish reason).
-spec chunk_text(Chunk :: map()) -> binary().
chunk_text(#{<<"choices">> := [#{<<"delta">> := Delta} | _]}) when is_map(Delta) ->
    text_or_empty(maps:get(<<"content">>, Delta, <<>>));
chunk_text(#{<<"choices">> := _}) -> <<>>;
chunk_text(#{<<"content">> := C}) when is_binary(C) -> C;
chunk_text(Other) -> erlang:error(badarg, [Other]).

text_or_empty(C) when is_binary(C) -> C;
text_or_empty(_) -> <<>>.

%%% ---- helpers ------------------------------------------------------------------------

bad(Detail) ->
    {error, {invalid_argument, Detail}}.

%% Config and input arguments: maps and binaries go to the NIF as they are; strings
%% (chardata) become binaries here (the BIF yields on long ones).
with_json(Arg, What, Fun) ->
    with_json(Arg, What, none, Fun).

%% Kind: a task type (binary) or session: the text values of a map are made binaries first.
with_json(Arg, What, Kind, Fun) when is_map(Arg) ->
    case text_input(Kind, Arg) of
        {ok, A} -> Fun(A);
        {error, Where, Why} -> bad(iolist_to_binary([What, ": ", Where, " ", Why]))
    end;
with_json(Arg, What, _Kind, Fun) ->
    case json_arg(Arg) of
        {ok, A} -> Fun(A);
        error -> bad(iolist_to_binary([What, " must be a map, a JSON binary or string, or null"]))
    end.

%%% ---- text in ------------------------------------------------------------------------
%% In a map input, a value where the C API wants text may be any chardata: a binary, a
%% string (a list of code points) or iodata. It becomes a binary here, before the NIF would
%% read a list as a JSON array. Token ids are never guessed from a list of integers: a
%% prompt of token ids is {tokens, [Id]}. Lists that cannot be text fail with
%% {invalid_argument, Detail} naming the key; other values (binaries, atoms, numbers, ...)
%% go to the NIF as they are, where the core checks them.

%% How each key is read: text (one string), texts (a string or an array of strings: a list
%% of integers is one string, any other list an array), prompt (text or {tokens, Ids}),
%% messages (chat messages), texts_or_tokens (texts, or {tokens, Ids}).
text_keys(<<"completion">>) -> [{<<"prompt">>, prompt} | generation_text_keys()];
text_keys(<<"chat">>) ->
    [{<<"messages">>, messages}, {<<"reasoning_format">>, text}, {<<"model">>, text}
     | generation_text_keys()];
text_keys(<<"embedding">>) ->
    [{<<"content">>, texts_or_tokens}, {<<"input">>, texts_or_tokens}, {<<"model">>, text},
     {<<"encoding_format">>, text}];
text_keys(<<"rerank">>) ->
    [{<<"query">>, text}, {<<"documents">>, texts}, {<<"texts">>, texts}, {<<"model">>, text}];
text_keys(<<"tokenize">>) -> [{<<"content">>, texts}];
text_keys(session) ->
    [{<<"system_prompt">>, text}, {<<"reasoning_format">>, text} | generation_text_keys()];
text_keys(_) -> [].

generation_text_keys() ->
    [{<<"stop">>, texts}, {<<"grammar">>, text}, {<<"samplers">>, texts},
     {<<"dry_sequence_breakers">>, texts}].

text_input(Kind, Input) ->
    case text_keys(Kind) of
        [] -> {ok, Input};
        Keys ->
            try
                {ok, maps:fold(fun(K, V, Acc) ->
                                       case lists:keyfind(key_name(K), 1, Keys) of
                                           {Name, How} -> Acc#{K := text_value(How, Name, V)};
                                           false -> Acc
                                       end
                               end, Input, Input)}
            catch
                throw:{not_text, Where, Why} -> {error, Where, Why}
            end
    end.

key_name(K) when is_atom(K) -> atom_to_binary(K, utf8);
key_name(K) -> K.

-define(TEXT, "must be text: a binary, or a string or iodata of Unicode characters").

text_value(text, Where, L) when is_list(L) -> chars(Where, L, ?TEXT);
text_value(prompt, Where, {tokens, Ids}) -> tokens(Where, Ids);
text_value(prompt, Where, L) when is_list(L) ->
    chars(Where, L, ?TEXT " (token ids: {tokens, [Id]})");
text_value(texts_or_tokens, Where, {tokens, Ids}) -> tokens(Where, Ids);
text_value(How, Where, L) when is_list(L), (How =:= texts orelse How =:= texts_or_tokens) ->
    case all(fun is_integer/1, L) of
        true when L =/= [] -> chars(Where, L, ?TEXT ", or a list of texts");
        _ -> indexed(Where, L, fun(W, E) -> text_value(text, W, E) end)
    end;
text_value(messages, Where, L) when is_list(L) ->
    indexed(Where, L, fun(W, M) when is_map(M) -> message(W, M);
                         (_W, M) -> M
                      end);
text_value(_, _Where, V) -> V.

message(Where, M) ->
    maps:map(fun(K, V) ->
                     case key_name(K) of
                         <<"content">> -> content(<<Where/binary, ".content">>, V);
                         N when N =:= <<"role">>; N =:= <<"name">>; N =:= <<"tool_call_id">>;
                                N =:= <<"reasoning_content">> ->
                             text_value(text, <<Where/binary, ".", N/binary>>, V);
                         _ -> V
                     end
             end, M).

%% a message's content: text, or a list of content parts (maps) whose text is converted
content(Where, L) when is_list(L) ->
    case not all(fun(E) -> not is_map(E) end, L) of
        true ->
            indexed(Where, L, fun(W, P) when is_map(P) ->
                                      maps:map(fun(K, V) ->
                                                       case key_name(K) of
                                                           <<"text">> -> text_value(text, <<W/binary, ".text">>, V);
                                                           _ -> V
                                                       end
                                               end, P);
                                 (_W, P) -> P
                              end);
        false ->
            chars(Where, L, ?TEXT ", or a list of content parts")
    end;
content(_Where, V) -> V.

%% lists:all/2 for improper lists too (false)
all(Pred, [H | T]) -> Pred(H) andalso all(Pred, T);
all(_Pred, []) -> true;
all(_Pred, _) -> false.

indexed(Where, L, Fun) ->
    try lists:zip(lists:seq(0, length(L) - 1), L) of
        Pairs -> [Fun(iolist_to_binary([Where, $[, integer_to_list(I), $]]), E) || {I, E} <- Pairs]
    catch
        error:_ -> throw({not_text, Where, <<"must be a proper list">>})
    end.

chars(Where, L, Why) ->
    try unicode:characters_to_binary(L) of
        B when is_binary(B) -> B;
        _ -> throw({not_text, Where, Why})
    catch
        error:_ -> throw({not_text, Where, Why})
    end.

tokens(Where, Ids) ->
    case is_list(Ids) andalso Ids =/= [] andalso all(fun is_integer/1, Ids) of
        true -> Ids;
        false -> throw({not_text, Where, <<"{tokens, Ids} needs a non-empty list of integer token ids">>})
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

%% @private Options: a map or a proplist ({K, V} or a bare atom for true), checked against
%% Defaults (llama_nif_server uses it too).
options(Opts, Defaults) when is_list(Opts) ->
    try maps:from_list([case O of {K, V} -> {K, V}; K when is_atom(K) -> {K, true} end || O <- Opts]) of
        M -> options(M, Defaults)
    catch
        _:_ -> bad(<<"options must be a map or a proplist">>)
    end;
options(Opts, Defaults) when is_map(Opts) ->
    case [K || K <- maps:keys(Opts), not is_map_key(K, Defaults)] of
        [] -> {ok, maps:merge(Defaults, Opts)};
        [K | _] -> bad(iolist_to_binary(io_lib:format("unknown option ~0tp", [K])))
    end;
options(_, _) ->
    bad(<<"options must be a map or a proplist">>).

%% @private
priv_dir() ->
    case code:priv_dir(?MODULE) of
        {error, bad_name} ->
            %% not in an application dir (escript, erl -pa): next to ebin/ or the source
            Beam = code:which(?MODULE),
            filename:join(filename:dirname(filename:dirname(Beam)), "priv");
        Dir ->
            Dir
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
%% @private
nif_info() -> ?NIF.
%% @private
nif_wait_servers(_, _) -> ?NIF.
nif_cpu_check() -> ?NIF.
nif_init_server(_) -> ?NIF.
nif_load_model(_, _, _) -> ?NIF.
nif_destroy_server(_) -> ?NIF.
nif_create_session(_, _, _) -> ?NIF.
nif_close_session(_, _) -> ?NIF.
nif_create_task(_, _, _, _, _, _, _, _) -> ?NIF.
nif_cancel_task(_, _) -> ?NIF.
nif_task_known(_, _) -> ?NIF.
nif_task_known_dirty(_, _) -> ?NIF.
nif_status(_, _, _) -> ?NIF.
nif_session_info(_, _, _, _) -> ?NIF.
