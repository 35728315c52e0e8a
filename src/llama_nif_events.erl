%% @doc Per-task events, named in the `telemetry' convention, with a plain subscription API.
%%
%% Each blocking call of llama_nif_server (chat/3, complete/3, embed/3, rerank/4,
%% tokenize/3, detokenize/3, run/4) ends with the event `[llama_nif, task, stop]', emitted
%% in the calling process. Measurements (times in native units, as `telemetry' does; see
%% erlang:convert_time_unit/3):
%% <ul>
%% <li>`duration': from the call to its end;</li>
%% <li>`prompt_time', `generation_time': the core's own timings of the task (0 when it
%%     has none, e.g. after an error);</li>
%% <li>`queue_time': the rest of `duration' (waiting for a slot, the call itself);</li>
%% <li>`prompt_tokens' (the whole prompt), `cached_tokens' (those of it that were in the
%%     slot's cache, not evaluated again), `generated_tokens'.</li>
%% </ul>
%% Metadata: `server' (the server_ref() called), `type', `task_id', `session' (or `none'),
%% `outcome' (`ok' or the error code), and `error' (the reason) when it failed.
%%
%% Handlers attached here are called in the emitting process; one that raises is detached
%% (with a logged warning). When the `telemetry' module is loaded (the `:telemetry'
%% package in the release), every event also goes to telemetry:execute/3; this package does
%% not depend on it.
-module(llama_nif_events).

-export([attach/4, detach/1, list_handlers/0, execute/3]).

-export_type([event_name/0, handler/0]).

-type event_name() :: [atom(), ...].
-type handler() :: fun((event_name(), #{atom() => number()}, #{atom() => term()}, term()) -> term()).
%% Called as Fun(EventName, Measurements, Metadata, Config).

-define(KEY, {?MODULE, handlers}).

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
    case erlang:function_exported(telemetry, execute, 3) of
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

%% one writer at a time (attach and detach are rare; reads are a persistent_term lookup)
update(Fun) ->
    global:trans({?KEY, self()},
                 fun() ->
                         {Reply, New} = Fun(handlers()),
                         persistent_term:put(?KEY, New),
                         Reply
                 end, [node()]).
