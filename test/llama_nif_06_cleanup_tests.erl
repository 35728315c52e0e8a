%% Freeing servers (after erlang-rocksdb's cleanup.erl): the owner of a server is killed
%% and the garbage collector frees it; destroy_server/1 with waiters. Nothing crashes,
%% every waiter hears {error, ...}, and the live-server count goes back.
-module(llama_nif_06_cleanup_tests).
-include_lib("eunit/include/eunit.hrl").

-import(llama_nif_test_lib, [chat/2, completion/2, await_down/1]).

cleanup_test_() ->
    [{timeout, 120, {"owner killed, GC frees the server", fun owner_killed_gc/0}},
     {timeout, 120, {"GC with a task in flight: its waiter gets an error", fun gc_with_waiter/0}},
     {timeout, 120, {"destroy_server with waiters and streams", fun destroy_with_waiters/0}},
     {timeout, 120, {"servers without a model, dropped", fun unloaded_servers_dropped/0}},
     {timeout, 300, {"halt() while generating exits cleanly", fun halt_while_generating/0}}].

%% The only reference to the server lives in the owner; it is killed while generating.
owner_killed_gc() ->
    Before = live(),
    Self = self(),
    {Owner, _} = OM = spawn_monitor(fun() ->
                                        S = llama_nif_test_lib:server(#{n_parallel => 1}),
                                        {ok, Sid} = llama_nif:create_session(S, #{}),
                                        {ok, T} = llama_nif:stream_task(S, Sid, completion, completion(<<"Once upon a time">>, 400)),
                                        {chunk, _} = llama_nif:next_chunk(T, 30000),
                                        Self ! {generating, self()},
                                        receive never -> S end
                                    end),
    receive {generating, Owner} -> ok after 60000 -> error(not_generating) end,
    ?assertEqual(Before + 1, live()),
    exit(Owner, kill),
    killed = await_down(OM),
    erlang:garbage_collect(),
    ?assert(llama_nif_debug:wait_servers(Before, 30000)),
    ?assertEqual(Before, live()),
    %% the library is still fine
    S2 = llama_nif_test_lib:server(#{n_parallel => 1}),
    {ok, T2} = llama_nif:create_task(S2, 0, completion, completion(<<"A">>, 2)),
    ?assertMatch({ok, _}, llama_nif:get_result(S2, T2, 30000)),
    ok = llama_nif:destroy_server(S2),
    ?assertEqual(Before, live()).

%% The waiter no longer holds the server (only the task id); when the server's holder dies
%% and it is collected, the waiter gets {llama_error, Id, {cancelled, _}}.
gc_with_waiter() ->
    Before = live(),
    Self = self(),
    HM = spawn_monitor(fun() ->
                           S = llama_nif_test_lib:server(#{n_parallel => 1}),
                           Self ! {server, S},   % the test hands it to the waiter and drops it
                           receive stop -> ok end
                       end),
    {Holder, _} = HM,
    S0 = receive {server, X} -> X after 60000 -> error(no_server) end,
    {Waiter, _} = WM = spawn_monitor(fun() -> waiter(start_task(S0), Self) end),
    receive {waiting, Waiter} -> ok after 60000 -> error(not_waiting) end,
    Holder ! stop,
    normal = await_down(HM),
    forget(),   % drop S0 from this process's heap and mailbox
    Result = receive {waited, Waiter, R} -> R after 60000 -> error(no_error_for_waiter) end,
    ?assertMatch({llama_error, _, {cancelled, <<"the server was destroyed">>}}, Result),
    normal = await_down(WM),
    ?assert(llama_nif_debug:wait_servers(Before, 30000)).

start_task(S) ->
    {ok, T} = llama_nif:stream_task(S, 0, completion, completion(<<"Once upon a time">>, 400)),
    {chunk, _} = llama_nif:next_chunk(T, 30000),
    T.

%% Holds only the task id: collects its own garbage so that the server term is gone.
waiter(T, Parent) ->
    erlang:garbage_collect(),
    Parent ! {waiting, self()},
    Parent ! {waited, self(), wait_end(T)}.

wait_end(T) ->
    receive
        {llama_chunk, T, _} -> wait_end(T);
        {llama_done, T, _} = M -> M;
        {llama_error, T, _} = M -> M
    after 60000 -> timeout
    end.

forget() ->
    erlang:garbage_collect().

destroy_with_waiters() ->
    Before = live(),
    S = llama_nif_test_lib:server(#{n_parallel => 2}),
    Self = self(),
    Waiters = [spawn_monitor(fun() ->
                                 {ok, T} = llama_nif:create_task(S, 0, completion, completion(<<"Once upon a time">>, 400)),
                                 Self ! {started, self()},
                                 Self ! {got, self(), llama_nif:get_result(S, T, 60000)}
                             end) || _ <- lists:seq(1, 4)],
    {ok, Ts} = llama_nif:stream_task(S, 0, chat, chat(<<"Tell me a long story.">>, 400)),
    [receive {started, P} -> ok after 60000 -> error(not_started) end || {P, _} <- Waiters],
    ok = llama_nif:destroy_server(S),
    [receive {got, P, R} -> ?assertEqual({error, {cancelled, <<"the server was destroyed">>}}, R)
     after 60000 -> error(waiter_not_told) end || {P, _} <- Waiters],
    ?assertMatch({error, {cancelled, <<"the server was destroyed">>}, _}, llama_nif:collect_stream(Ts, 60000)),
    [normal = await_down(W) || W <- Waiters],
    ?assertEqual(Before, live()).

unloaded_servers_dropped() ->
    Before = live(),
    PM = spawn_monitor(fun() -> [{ok, _} = llama_nif:init_server(#{}) || _ <- lists:seq(1, 5)] end),
    normal = await_down(PM),
    ?assert(llama_nif_debug:wait_servers(Before, 30000)),
    ?assertEqual(Before, live()).

%% A VM that halts with a server generating (no destroy): exit() runs llama.cpp's static
%% destructors, so the NIF must stop the core's threads first. Three runs in fresh VMs.
halt_while_generating() ->
    Erl = os:find_executable("erl"),
    Ebin = filename:dirname(code:which(llama_nif)),
    Code = io_lib:format(
             "{ok, S} = llama_nif:init_server(#{n_parallel => 2, n_ctx => 256, model => ~p, log_level => error}),"
             "{ok, T} = llama_nif:stream_task(S, 0, completion, #{prompt => <<\"Once\">>, n_predict => 300}),"
             "{chunk, _} = llama_nif:next_chunk(T, 30000),"
             "halt(7).", [llama_nif_test_lib:model()]),
    [begin
         Port = open_port({spawn_executable, Erl},
                          [{args, ["-noshell", "-pa", Ebin, "-eval", lists:flatten(Code)]}, exit_status, stderr_to_stdout]),
         ?assertEqual(7, exit_status(Port))   % 7 from halt(7): no crash on the way out
     end || _ <- [1, 2, 3]].

exit_status(Port) ->
    receive
        {Port, {data, _}} -> exit_status(Port);
        {Port, {exit_status, S}} -> S
    after 120000 -> error(child_vm_hangs)
    end.

live() ->
    maps:get(servers, llama_nif_debug:info()).
