%% The [llama_nif, task, stop] event on the real model, from every call that takes a task's
%% end: the low-level get_result/3 and streams, llama_nif_server's streams, async/await and
%% blocking calls; one event per task; cancelled tasks; what a receiver that did not create
%% the task knows; the bound on the starts kept per process.
-module(llama_nif_11_events_tests).
-include_lib("eunit/include/eunit.hrl").

-define(SRV, llama_nif_test_events_llm).
-define(STOP, [llama_nif, task, stop]).
-define(PENDING, {llama_nif_events, pending}).

events_test_() ->
    {setup, fun start/0, fun stop/1,
     fun(S) ->
         [{timeout, 300, {Name, fun() -> with_handler(fun() -> F(S) end) end}} ||
             {Name, F} <- [{"low level: create_task + get_result", fun low_result/1},
                           {"low level: a stream in a session", fun low_stream/1},
                           {"low level: a cancelled task", fun low_cancelled/1},
                           {"low level: the receiver is another process", fun low_reply_to/1},
                           {"low level: no handler, no start kept", fun low_not_listening/1},
                           {"low level: at most 1000 starts kept per process", fun low_bound/1},
                           {"llama_nif_server: a stream", fun server_stream/1},
                           {"llama_nif_server: a cancelled stream", fun server_cancelled/1},
                           {"llama_nif_server: one event per task, whichever call takes its end",
                            fun server_once/1}]]
     end}.

start() ->
    Model = llama_nif_test_lib:model(),
    {ok, Pid} = llama_nif_server:start_link(#{name => ?SRV, model => Model,
                                              config => #{n_parallel => 2, n_ctx => 1024, log_level => error}}),
    unlink(Pid),
    llama_nif_test_lib:server(#{n_ctx => 1024}).

stop(S) ->
    ok = llama_nif:destroy_server(S),
    ok = llama_nif_server:stop(?SRV).

%% a handler sending this process's test every event (it runs in the emitting process)
with_handler(Fun) ->
    Self = self(),
    Id = {?MODULE, make_ref()},
    ok = llama_nif_events:attach(Id, ?STOP, fun(E, M, Meta, Tag) -> Self ! {Tag, E, M, Meta} end, ?MODULE),
    put(handler, Id),
    try Fun() after llama_nif_events:detach(Id), llama_nif_test_lib:flush() end.

%% the events of a task already in the mailbox (handlers run in the emitting process: an
%% event of this process is here when the call that emitted it returns)
events(TaskId) ->
    receive
        {?MODULE, ?STOP, M, #{task_id := TaskId} = Meta} -> [{M, Meta} | events(TaskId)]
    after 0 -> []
    end.

%% the one event of a task
event(TaskId) ->
    case events(TaskId) of
        [E] -> E;
        Es -> error({not_one_event, TaskId, Es})
    end.

gen(Prompt, N) ->
    #{prompt => Prompt, n_predict => N, ignore_eos => true, temperature => 0}.

say(Text, N) ->
    #{messages => [#{role => user, content => Text}], n_predict => N, ignore_eos => true, temperature => 0}.

long() ->
    gen(<<"Once upon a time">>, 900).

low_result(S) ->
    {ok, T} = llama_nif:create_task(S, 0, chat, say(<<"Say hello.">>, 4)),
    {ok, R} = llama_nif:get_result(S, T, 60000),
    #{<<"usage">> := #{<<"prompt_tokens">> := Prompt, <<"completion_tokens">> := 4}} = R,
    {M, Meta} = event(T),
    ?assertEqual(#{task_id => T, type => chat, session => none, outcome => ok}, Meta),
    #{generated_tokens := 4, prompt_tokens := Prompt, cached_tokens := Cached, duration := D,
      prompt_time := P, generation_time := G, queue_time := Q} = M,
    ?assertEqual([cached_tokens, duration, generated_tokens, generation_time, prompt_time, prompt_tokens,
                  queue_time], lists:sort(maps:keys(M))),
    ?assert(Cached >= 0 andalso Cached =< Prompt),
    ?assert(P > 0 andalso G > 0 andalso Q >= 0),
    ?assertEqual(D, P + G + Q),
    %% the start kept for the event is gone with it; asking again finds no task, and no event
    ?assertEqual(undefined, get(?PENDING)),
    ?assertMatch({error, {task_not_found, _}}, llama_nif:get_result(S, T, 0)),
    ?assertEqual([], events(T)),
    %% format json: the binary is not decoded; the duration is still known
    {ok, TJ} = llama_nif:create_task(S, 0, completion, gen(<<"1, 2,">>, 2), #{format => json}),
    {ok, Json} = llama_nif:get_result(S, TJ, 60000),
    ?assert(is_binary(Json)),
    ?assertMatch({#{duration := _} = MJ, #{type := completion, outcome := ok}} when map_size(MJ) =:= 1, event(TJ)),
    %% a tokenize result has no timings: only the duration
    {ok, TT} = llama_nif:create_task(S, 0, <<"tokenize">>, #{content => <<"hi">>}),
    {ok, _} = llama_nif:get_result(S, TT, 60000),
    ?assertMatch({#{duration := _} = MT, #{type := tokenize, outcome := ok}} when map_size(MT) =:= 1, event(TT)).

low_stream(S) ->
    {ok, Sid} = llama_nif:create_session(S, #{}),
    {ok, T} = llama_nif:stream_task(S, Sid, "completion", gen(<<"1, 2, 3,">>, 4)),
    {ok, Chunks, #{<<"tokens_predicted">> := 4}} = llama_nif:collect_stream(T, 60000),
    ?assert(length(Chunks) >= 4),
    {M, Meta} = event(T),
    ?assertEqual(#{task_id => T, type => completion, session => Sid, outcome => ok}, Meta),
    ?assertMatch(#{generated_tokens := 4, prompt_tokens := _, duration := _, queue_time := _}, M),
    %% next_chunk/2 alone: the end is taken by the last call
    {ok, T2} = llama_nif:stream_task(S, 0, chat, say(<<"Hi">>, 3)),
    ok = next_until_done(T2),
    ?assertMatch({#{generated_tokens := 3}, #{type := chat, outcome := ok}}, event(T2)),
    ok = llama_nif:close_session(S, Sid).

next_until_done(T) ->
    case llama_nif:next_chunk(T, 60000) of
        {chunk, _} ->
            ?assertEqual([], events(T)),
            next_until_done(T);
        {done, _} -> ok
    end.

low_cancelled(S) ->
    {ok, T} = llama_nif:create_task(S, 0, completion, long()),
    ok = llama_nif:cancel_task(S, T),
    {error, {cancelled, _} = Reason} = llama_nif:get_result(S, T, 60000),
    {M, Meta} = event(T),
    ?assertEqual(#{task_id => T, type => completion, session => none, outcome => cancelled, error => Reason}, Meta),
    %% an error carries no tokens or core timings: only what was measured here
    ?assertEqual([duration], maps:keys(M)),
    %% a stream cancelled after its first chunk
    {ok, T2} = llama_nif:stream_task(S, 0, completion, long()),
    {chunk, _} = llama_nif:next_chunk(T2, 60000),
    ok = llama_nif:cancel_task(S, T2),
    {error, {cancelled, _}, _} = llama_nif:collect_stream(T2, 60000),
    ?assertMatch({#{duration := _}, #{outcome := cancelled, type := completion}}, event(T2)).

%% reply_to another process: that process takes the end, without the start or the type
low_reply_to(S) ->
    Parent = self(),
    Reader = spawn_link(fun() ->
                                receive {go, T} -> Parent ! {read, T, llama_nif:get_result(S, T, 60000)} end
                        end),
    {ok, T} = llama_nif:create_task(S, 0, completion, gen(<<"A, B,">>, 3), #{reply_to => Reader}),
    ?assertEqual(undefined, get(?PENDING)),
    Reader ! {go, T},
    receive {read, T, {ok, _}} -> ok after 60000 -> error(no_result) end,
    %% the reader's handler call sent its event before the reader sent {read, ...}
    {M, Meta} = event(T),
    ?assertEqual(#{task_id => T, type => undefined, outcome => ok}, Meta),
    ?assertMatch(#{generated_tokens := 3, prompt_time := _, generation_time := _}, M),
    ?assertNot(is_map_key(duration, M) orelse is_map_key(queue_time, M)).

%% with no handler attached nothing is kept for the event
low_not_listening(S) ->
    ok = llama_nif_events:detach(get(handler)),
    ?assertNot(lists:keymember(?STOP, 2, llama_nif_events:list_handlers())),
    {ok, T} = llama_nif:create_task(S, 0, tokenize, #{content => <<"hi">>}),
    ?assertEqual(undefined, get(?PENDING)),
    {ok, _} = llama_nif:get_result(S, T, 60000),
    ?assertEqual([], events(T)).

%% Tasks whose end is never taken through these calls keep no more than 1000 starts: the
%% oldest is forgotten, and its event then lacks its duration and type.
low_bound(S) ->
    Ids = [begin {ok, T} = llama_nif:create_task(S, 0, tokenize, #{content => <<"hi">>}), T end
           || _ <- lists:seq(1, 1005)],
    Kept = get(?PENDING),
    ?assertEqual(1000, map_size(Kept)),
    ?assertEqual(lists:nthtail(5, Ids), lists:sort(maps:keys(Kept))),
    [First | _] = Ids,
    Last = lists:last(Ids),
    {ok, _} = llama_nif:get_result(S, First, 60000),
    ?assertEqual({#{}, #{task_id => First, type => undefined, outcome => ok}}, event(First)),
    {ok, _} = llama_nif:get_result(S, Last, 60000),
    ?assertMatch({#{duration := _}, #{type := tokenize}}, event(Last)),
    ?assertEqual(999, map_size(get(?PENDING))),
    %% the rest taken by a receive of one's own: no events, and the starts stay until the
    %% process ends (bounded as above)
    [receive {llama_done, T, _} -> ok after 60000 -> error({no_result, T}) end
     || T <- Ids, T =/= First, T =/= Last],
    erase(?PENDING).

server_stream(_S) ->
    {ok, T} = llama_nif_server:stream(?SRV, chat, say(<<"Count from 1 to 5.">>, 4)),
    {ok, _Chunks, #{<<"usage">> := #{<<"prompt_tokens">> := Prompt}}} = llama_nif:collect_stream(T, 60000),
    {M, Meta} = event(T),
    ?assertEqual(#{task_id => T, type => chat, server => ?SRV, session => none, outcome => ok}, Meta),
    ?assertMatch(#{generated_tokens := 4, prompt_tokens := Prompt, duration := _, queue_time := _}, M),
    %% in a session, as completion
    {ok, Session} = llama_nif_server:open_session(?SRV),
    {ok, T2} = llama_nif_server:stream(?SRV, completion, gen(<<"1, 2,">>, 2), #{session => Session}),
    {ok, _, _} = llama_nif:collect_stream(T2, 60000),
    ?assertMatch({#{generated_tokens := 2}, #{type := completion, session := Session, server := ?SRV}}, event(T2)),
    ok = llama_nif_server:close_session(?SRV, Session).

server_cancelled(_S) ->
    {ok, T} = llama_nif_server:stream(?SRV, completion, long()),
    {chunk, _} = llama_nif:next_chunk(T, 60000),
    ok = llama_nif_server:cancel(?SRV, T),
    {error, {cancelled, _} = Reason, _} = llama_nif:collect_stream(T, 60000),
    {M, Meta} = event(T),
    ?assertEqual(#{task_id => T, type => completion, server => ?SRV, session => none, outcome => cancelled,
                   error => Reason}, Meta),
    ?assertEqual([duration], maps:keys(M)).

%% llama_nif_server creates its tasks with llama_nif:create_task/5 in the server process;
%% whichever layer takes a task's end, the task has one event.
server_once(_S) ->
    {ok, R} = llama_nif_server:chat(?SRV, say(<<"Say hello.">>, 4)),
    #{<<"usage">> := #{<<"completion_tokens">> := 4}} = R,
    ?assertMatch([{#{generated_tokens := 4, duration := _, queue_time := _},
                   #{type := chat, server := ?SRV, session := none, outcome := ok}}], all_events()),
    {ok, _} = llama_nif_server:tokenize(?SRV, <<"hi">>),
    ?assertMatch([{#{duration := _}, #{type := tokenize, server := ?SRV, outcome := ok}}], all_events()),
    %% the end taken by llama_nif's calls, by await/2 here, by await/2 in another process
    {ok, T2} = llama_nif_server:stream(?SRV, completion, gen(<<"1, 2,">>, 3)),
    {ok, _, _} = llama_nif:collect_stream(T2, 60000),
    {ok, T3} = llama_nif_server:async(?SRV, completion, gen(<<"1, 2,">>, 3), #{}),
    {ok, _} = llama_nif_server:await(T3, 60000),
    {ok, T4} = llama_nif_server:async(?SRV, chat, say(<<"Hi">>, 2), #{}),
    {done, _} = llama_nif:next_chunk(T4, 60000),
    Parent = self(),
    Waiter = spawn_link(fun() -> receive {task, T} -> Parent ! {awaited, T, llama_nif_server:await(T, 60000)} end end),
    {ok, T5} = llama_nif_server:async(?SRV, completion, gen(<<"1, 2,">>, 2), #{reply_to => Waiter}),
    Waiter ! {task, T5},
    %% the waiter's handler call sent its event before the waiter sent {awaited, ...}
    receive {awaited, T5, {ok, _}} -> ok after 60000 -> error(no_result) end,
    Events = all_events(),
    ?assertEqual([T2, T3, T4, T5], [T || {_, #{task_id := T}} <- Events]),
    ByTask = maps:from_list([{T, E} || {_, #{task_id := T}} = E <- Events]),
    [?assertMatch({#{duration := _, generated_tokens := N},
                   #{server := ?SRV, session := none, type := Type, outcome := ok}}, maps:get(T, ByTask))
     || {T, N, Type} <- [{T2, 3, completion}, {T3, 3, completion}, {T4, 2, chat}]],
    %% the waiter did not start T5: no type, no duration
    {M5, Meta5} = maps:get(T5, ByTask),
    ?assertEqual(#{task_id => T5, type => undefined, outcome => ok}, Meta5),
    ?assertMatch(#{generated_tokens := 2}, M5),
    ?assertNot(is_map_key(duration, M5)),
    %% a blocking call's timeout: its event says so, with what was measured
    {error, {timeout, _}} = llama_nif_server:complete(?SRV, long(), #{timeout => 100}),
    ?assertMatch([{#{duration := _} = MT, #{outcome := timeout, type := completion, error := {timeout, _}}}]
                 when map_size(MT) =:= 1, all_events()).

%% every event in the mailbox, in order
all_events() ->
    receive
        {?MODULE, ?STOP, M, Meta} -> [{M, Meta} | all_events()]
    after 0 -> []
    end.
