%% @doc Per-task events, named in the `telemetry' convention, with a plain subscription API.
%%
%% A task's end (its result or its error) emits one event `[llama_nif, task, stop]', in the
%% process that takes that end from its mailbox through one of these calls:
%% <ul>
%% <li>the blocking calls of llama_nif_server (chat/3, complete/3, embed/3, rerank/4,
%%     tokenize/3, detokenize/3, run/4), including their timeout (outcome `timeout', the
%%     task cancelled) and the server's exit (outcome `cancelled');</li>
%% <li>llama_nif_server:await/2;</li>
%% <li>llama_nif:get_result/3, llama_nif:next_chunk/2 and llama_nif:collect_stream/2, for
%%     a task of llama_nif:create_task/5, llama_nif:stream_task/5, llama_nif_server:stream/4
%%     or llama_nif_server:async/4 (and the Elixir streams, built on next_chunk/2, also when
%%     halted early: the cancelled end is taken through it).</li>
%% </ul>
%% A task's end message is taken once, so a task gives at most one event, from the layer
%% that took it (llama_nif_server's process, which creates the tasks of its callers, takes
%% none); none when the end is taken by a receive of one's own, or never. A call's own
%% timeout that leaves the task running (get_result/3, next_chunk/2, await/2) emits nothing.
%%
%% Measurements (times in native units, as `telemetry' does; see
%% erlang:convert_time_unit/3). Each is present only when it is known where the end is
%% taken; none is made up:
%% <ul>
%% <li>`duration': from the call that created the task to the receipt of its end (so it
%%     includes any time the end waited in the mailbox). The blocking calls of
%%     llama_nif_server always have it. The other calls have it when the task was created by
%%     the process that takes its end (no `reply_to' elsewhere) while a
%%     `[llama_nif, task, stop]' handler was attached or `telemetry' loaded: the start is then
%%     kept in that process's dictionary until the end is taken (at most 1000 tasks per
%%     process; beyond, the oldest start is forgotten, so tasks whose end is never taken
%%     cannot grow it).</li>
%% <li>`prompt_time', `generation_time': the core's own timings of the task, from the
%%     `<<"timings">>' of a chat or completion result (a stream's final result has them).</li>
%% <li>`queue_time': `duration' less those two (waiting for a slot, the calls themselves,
%%     the mailbox), when all three are known.</li>
%% <li>`prompt_tokens' (the whole prompt), `cached_tokens' (those of it that were in the
%%     slot's cache, not evaluated again), `generated_tokens': from those timings; for an
%%     embedding or rerank result, `prompt_tokens' from its `<<"usage">>'.</li>
%% </ul>
%% So an error (cancelled, timeout, ...) carries `duration' at most; a tokenize or
%% detokenize result, or one in `format => json' (a binary, not decoded here), no token
%% counts or core timings.
%%
%% Metadata: `task_id'; `type' (the task type as an atom; `undefined' when no start was
%% kept, as for `duration' above); `outcome' (`ok' or the error code); `error' (the reason)
%% when it failed; and, when known (the blocking calls, or a start kept): `session'
%% (llama_nif_server's session(), the low-level session id, or `none'), and `server' (the
%% server_ref() called) for tasks of llama_nif_server.
%%
%% Handlers attached here are called in the emitting process; one that raises is detached
%% (with a logged warning). When the `telemetry' module is loaded (the `:telemetry'
%% package in the release), every event also goes to telemetry:execute/3; this package does
%% not depend on it.
-module(llama_nif_events).

-export([attach/4, detach/1, list_handlers/0, execute/3]).
%% for llama_nif and llama_nif_server: not part of the API
-export([task_started/3, task_ended/2, task_stop/3]).

-export_type([event_name/0, handler/0]).

-type event_name() :: [atom(), ...].
-type handler() :: fun((event_name(), #{atom() => number()}, #{atom() => term()}, term()) -> term()).
%% Called as Fun(EventName, Measurements, Metadata, Config).

-define(KEY, {?MODULE, handlers}).
-define(STOP, [llama_nif, task, stop]).
%% the process dictionary key of the tasks this process created and will receive:
%% #{TaskId => {StartNative, Metadata}}
-define(PENDING, {?MODULE, pending}).
-define(MAX_PENDING, 1000).

%% @doc Calls Fun for every event named EventName from now on. Id names the handler (for
%% detach/1); it must not be attached already.
-spec attach(term(), event_name(), handler(), term()) -> ok | {error, already_exists}.
attach(Id, EventName, Fun, Config) when is_list(EventName), is_function(Fun, 4) ->
    update(fun(Hs) ->
                   case lists:keymember(Id, 1, Hs) of
                       true -> {{error, already_exists}, Hs};
                       false -> {ok, Hs ++ [{Id, EventName, Fun, Config}]}
                   end
           end).

%% @doc Removes a handler.
-spec detach(term()) -> ok | {error, not_found}.
detach(Id) ->
    update(fun(Hs) ->
                   case lists:keymember(Id, 1, Hs) of
                       true -> {ok, lists:keydelete(Id, 1, Hs)};
                       false -> {{error, not_found}, Hs}
                   end
           end).

%% @doc The attached handlers: `{Id, EventName}'.
-spec list_handlers() -> [{term(), event_name()}].
list_handlers() ->
    [{Id, E} || {Id, E, _, _} <- handlers()].

%% @doc Emits an event to the handlers attached to its name, and to telemetry when loaded.
-spec execute(event_name(), map(), map()) -> ok.
execute(EventName, Measurements, Metadata) ->
    [call(H, EventName, Measurements, Metadata) || {_, E, _, _} = H <- handlers(), E =:= EventName],
    case telemetry_loaded() of
        true -> _ = catch telemetry:execute(EventName, Measurements, Metadata), ok;
        false -> ok
    end.

call({Id, _, Fun, Config}, EventName, Measurements, Metadata) ->
    try
        Fun(EventName, Measurements, Metadata, Config)
    catch
        Class:Reason ->
            _ = detach(Id),
            logger:warning("llama_nif_events: handler ~0tp detached after ~0tp:~0tp", [Id, Class, Reason])
    end.

handlers() ->
    persistent_term:get(?KEY, []).

telemetry_loaded() ->
    erlang:function_exported(telemetry, execute, 3).

%% anyone to hear a task's end: a handler of it, or telemetry
listening() ->
    lists:keymember(?STOP, 2, handlers()) orelse telemetry_loaded().

%% one writer at a time (attach and detach are rare; reads are a persistent_term lookup)
update(Fun) ->
    global:trans({?KEY, self()},
                 fun() ->
                         {Reply, New} = Fun(handlers()),
                         persistent_term:put(?KEY, New),
                         Reply
                 end, [node()]).

%%% ---- task events (llama_nif, llama_nif_server) ----------------------------------------

%% @private Notes, in the calling process, that it created the task and will receive its
%% end: its start (erlang:monotonic_time/0 before the create call) and metadata (type,
%% session, server). Kept only while someone listens; at most ?MAX_PENDING per process, the
%% oldest (lowest id: ids increase) dropped first, so tasks whose end is never received here
%% cannot grow the dictionary without bound.
-spec task_started(llama_nif:task_id(), integer(), map()) -> ok.
task_started(TaskId, Start, Meta) ->
    case listening() of
        false -> ok;
        true ->
            P0 = case get(?PENDING) of
                     undefined -> #{};
                     M -> M
                 end,
            P = case map_size(P0) >= ?MAX_PENDING of
                    true -> maps:remove(lists:min(maps:keys(P0)), P0);
                    false -> P0
                end,
            put(?PENDING, P#{TaskId => {Start, Meta}}),
            ok
    end.

%% @private The task's end was received in this process (Outcome: {ok, Result} or
%% {error, Reason}): forgets its note and emits its event. Returns Outcome, so that a
%% receive clause can end with this call.
-spec task_ended(llama_nif:task_id(), Outcome) -> Outcome when Outcome :: {ok, term()} | {error, term()}.
task_ended(TaskId, Outcome) ->
    {Start, Meta} = case get(?PENDING) of
                        undefined -> {undefined, #{}};
                        P ->
                            case maps:take(TaskId, P) of
                                {Note, P1} when map_size(P1) =:= 0 -> erase(?PENDING), Note;
                                {Note, P1} -> put(?PENDING, P1), Note;
                                error -> {undefined, #{}}
                            end
                    end,
    ok = task_stop(Start, Outcome, Meta#{task_id => TaskId}),
    Outcome.

%% @private Emits [llama_nif, task, stop] for a task that started at Start (native
%% monotonic time, or undefined when not known) and ended with Outcome.
-spec task_stop(integer() | undefined, {ok, term()} | {error, term()}, map()) -> ok.
task_stop(Start, Outcome, Meta) ->
    case listening() of
        false -> ok;
        true -> execute(?STOP, measurements(Start, Outcome), metadata(Outcome, Meta))
    end.

measurements(Start, Outcome) ->
    Core = case Outcome of
               {ok, R} -> core(R);
               {error, _} -> #{}
           end,
    case Start of
        undefined -> Core;
        _ ->
            Duration = erlang:monotonic_time() - Start,
            case Core of
                #{prompt_time := P, generation_time := G} ->
                    Core#{duration => Duration, queue_time => max(0, Duration - P - G)};
                _ ->
                    Core#{duration => Duration}
            end
    end.

%% what a result says of itself: the timings of a chat or completion (maps with binary
%% keys), the usage of an embedding or rerank
core(#{<<"timings">> := #{} = T}) ->
    Native = fun(Ms) -> erlang:convert_time_unit(round(Ms * 1000), microsecond, native) end,
    case [maps:get(K, T, undefined) || K <- [<<"prompt_n">>, <<"cache_n">>, <<"predicted_n">>,
                                             <<"prompt_ms">>, <<"predicted_ms">>]] of
        [PromptN, CacheN, PredictedN, PromptMs, PredictedMs]
          when is_integer(PromptN), is_integer(CacheN), is_integer(PredictedN),
               is_number(PromptMs), is_number(PredictedMs) ->
            #{prompt_tokens => PromptN + CacheN,
              cached_tokens => CacheN,
              generated_tokens => PredictedN,
              prompt_time => Native(PromptMs),
              generation_time => Native(PredictedMs)};
        _ ->
            #{}
    end;
core(#{<<"usage">> := #{<<"prompt_tokens">> := N}}) when is_integer(N) ->
    #{prompt_tokens => N};
core(_) ->
    #{}.

metadata(Outcome, Meta) ->
    M = Meta#{type => type_name(maps:get(type, Meta, undefined))},
    case Outcome of
        {ok, _} -> M#{outcome => ok};
        {error, {Code, _} = Reason} when is_atom(Code) -> M#{outcome => Code, error => Reason};
        {error, Reason} -> M#{outcome => error, error => Reason}
    end.

%% a task type as an atom (the types the core runs are known atoms), as given otherwise
type_name(T) when is_atom(T) -> T;
type_name(T) when is_binary(T) ->
    try binary_to_existing_atom(T, utf8) catch error:badarg -> T end;
type_name(T) when is_list(T) ->
    case catch unicode:characters_to_binary(T) of
        B when is_binary(B) -> type_name(B);
        _ -> T
    end;
type_name(T) -> T.
