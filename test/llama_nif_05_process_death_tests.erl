%% Processes that exit: their tasks are cancelled (monitors), their slot serves others at
%% once, other sessions go on; sessions die with their owner only when asked to.
-module(llama_nif_05_process_death_tests).
-include_lib("eunit/include/eunit.hrl").

-import(llama_nif_test_lib, [chat/2, completion/2, content/1, await_down/1]).

death_test_() ->
    [{timeout, 180, {"killed mid-generation: task cancelled, slot freed, others go on", fun killed_mid_generation/0}},
     {timeout, 120, {"sessions outlive their creator by default", fun session_outlives_creator/0}},
     {timeout, 120, {"close_on_exit: the session dies with its owner", fun session_closes_with_owner/0}},
     {timeout, 120, {"close_on_exit with another owner", fun session_other_owner/0}},
     {timeout, 120, {"many short-lived processes", fun many_short_lived/0}}].

%% One slot. A streams a long generation in session 1; B's task in session 2 queues behind
%% it. Killing A mid-generation must cancel A's task: B then runs on the freed slot, and
%% the server completed B only (A's task never finished).
killed_mid_generation() ->
    S = llama_nif_test_lib:server(#{n_parallel => 1, n_ctx => 1024}),
    Self = self(),
    {ok, Sid1} = llama_nif:create_session(S, #{}),
    {ok, Sid2} = llama_nif:create_session(S, #{}),
    {A, _} = AM = spawn_monitor(fun() ->
                  {ok, TA} = llama_nif:stream_task(S, Sid1, completion,
                                                   (completion(<<"Once upon a time">>, 900))#{ignore_eos => true}),
                  {chunk, _} = llama_nif:next_chunk(TA, 30000),
                  Self ! {generating, self(), TA},
                  receive never -> ok end
              end),
    TaskA = receive {generating, A, TA} -> TA after 30000 -> error(a_not_generating) end,
    B = spawn(fun() ->
                  {ok, TB} = llama_nif:create_task(S, Sid2, chat, chat(<<"Say hello.">>, 8)),
                  Self ! {queued, self()},
                  Self ! {b_result, llama_nif:get_result(S, TB, 120000)}
              end),
    receive {queued, B} -> ok after 30000 -> error(b_not_queued) end,
    {ok, #{<<"tasks">> := #{<<"running">> := 1, <<"queued">> := 1}}} = llama_nif:status(S),
    Killed = erlang:monotonic_time(millisecond),
    exit(A, kill),
    killed = await_down(AM),
    BResult = receive {b_result, R} -> R after 120000 -> error(b_no_result) end,
    FreedMs = erlang:monotonic_time(millisecond) - Killed,
    io:format(user, "~n    kill -> the other session's task done on the freed slot: ~b ms~n", [FreedMs]),
    ?assertMatch({ok, _}, BResult),
    {ok, Done} = BResult,
    ?assert(byte_size(content(Done)) > 0),
    {ok, St} = llama_nif:status(S),
    ?assertMatch(#{<<"totals">> := #{<<"tasks_completed">> := 1},
                   <<"tasks">> := #{<<"running">> := 0, <<"queued">> := 0, <<"unfetched">> := 0},
                   <<"slots">> := [#{<<"busy">> := false}]}, St),
    ?assertMatch({error, {task_not_found, _}}, llama_nif:cancel_task(S, TaskA)),
    %% A's session is still there (it did not ask to die with A) and works
    {ok, T3} = llama_nif:create_task(S, Sid1, chat, chat(<<"Hi">>, 4)),
    ?assertMatch({ok, _}, llama_nif:get_result(S, T3, 60000)),
    ok = llama_nif:destroy_server(S).

session_outlives_creator() ->
    S = llama_nif_test_lib:server(#{n_parallel => 1}),
    Self = self(),
    PM = spawn_monitor(fun() -> Self ! {sid, llama_nif:create_session(S, #{system_prompt => <<"Be brief.">>})} end),
    {ok, Sid} = receive {sid, R} -> R after 30000 -> error(no_session) end,
    normal = await_down(PM),
    {ok, T} = llama_nif:create_task(S, Sid, chat, chat(<<"Hi">>, 4)),
    ?assertMatch({ok, _}, llama_nif:get_result(S, T, 60000)),
    ?assertMatch({ok, #{<<"task_count">> := 1}}, llama_nif:session_info(S, Sid)),
    ok = llama_nif:destroy_server(S).

%% The owner exits while another process generates in its session: that task is cancelled
%% ("session N was closed") and the session is gone.
session_closes_with_owner() ->
    S = llama_nif_test_lib:server(#{n_parallel => 1}),
    Self = self(),
    {Owner, _} = OM = spawn_monitor(fun() ->
                                        Self ! {sid, llama_nif:create_session(S, #{}, #{close_on_exit => true})},
                                        receive exit -> ok end
                                    end),
    {ok, Sid} = receive {sid, R} -> R after 30000 -> error(no_session) end,
    {ok, T} = llama_nif:stream_task(S, Sid, completion, (completion(<<"Once upon a time">>, 900))#{ignore_eos => true}),
    {chunk, _} = llama_nif:next_chunk(T, 30000),
    Owner ! exit,
    normal = await_down(OM),
    {error, Reason, _} = llama_nif:collect_stream(T, 60000),
    ?assertEqual({cancelled, iolist_to_binary(["session ", integer_to_list(Sid), " was closed"])}, Reason),
    ?assertMatch({error, {session_not_found, _}}, llama_nif:session_info(S, Sid)),
    ok = llama_nif:destroy_server(S).

%% owner => Pid ties the session to another process; a dead owner is refused.
session_other_owner() ->
    S = llama_nif_test_lib:server(#{n_parallel => 1}),
    {Owner, _} = OM = spawn_monitor(fun() -> receive exit -> ok end end),
    {ok, Sid} = llama_nif:create_session(S, #{}, [close_on_exit, {owner, Owner}]),
    {ok, T} = llama_nif:stream_task(S, Sid, completion, (completion(<<"Once upon a time">>, 900))#{ignore_eos => true}),
    {chunk, _} = llama_nif:next_chunk(T, 30000),
    Owner ! exit,
    normal = await_down(OM),
    ?assertMatch({error, {cancelled, _}, _}, llama_nif:collect_stream(T, 60000)),
    ?assertMatch({error, {session_not_found, _}}, llama_nif:session_info(S, Sid)),
    ?assertMatch({error, {invalid_argument, <<"the session owner is not alive">>}},
                 llama_nif:create_session(S, #{}, #{close_on_exit => true, owner => Owner})),
    {ok, St} = llama_nif:status(S),
    ?assertMatch(#{<<"sessions">> := 0}, St),
    ok = llama_nif:destroy_server(S).

%% 40 processes queue tasks in one session and die at once (half killed, half exiting
%% with shutdown). A task queued after them in that session runs only once every earlier
%% one has ended: when it is done, only it may have completed; the rest were cancelled.
many_short_lived() ->
    S = llama_nif_test_lib:server(#{n_parallel => 2}),
    {ok, Sid} = llama_nif:create_session(S, #{}),
    Self = self(),
    Procs = [spawn_monitor(fun() ->
                      {ok, _} = llama_nif:create_task(S, Sid, completion,
                                                      (completion(<<"Tell me a story">>, 300))#{ignore_eos => true}),
                      Self ! {started, self()},
                      receive never -> ok end
                  end) || _ <- lists:seq(1, 40)],
    [receive {started, P} -> ok after 60000 -> error(not_started) end || {P, _} <- Procs],
    {Kill, Stop} = lists:split(20, Procs),
    [exit(P, kill) || {P, _} <- Kill],
    [exit(P, shutdown) || {P, _} <- Stop],
    [await_down(PM) || PM <- Procs],
    {ok, T} = llama_nif:create_task(S, Sid, completion, completion(<<"Next">>, 2)),
    ?assertMatch({ok, _}, llama_nif:get_result(S, T, 120000)),
    {ok, St} = llama_nif:status(S),
    ?assertMatch(#{<<"tasks">> := #{<<"running">> := 0, <<"queued">> := 0, <<"unfetched">> := 0},
                   <<"totals">> := #{<<"tasks_completed">> := 1}}, St),
    ok = llama_nif:destroy_server(S).
