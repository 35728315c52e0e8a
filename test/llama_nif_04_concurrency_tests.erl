%% 64 tasks at once from 64 processes, while a probe measures the round-trip latency of a
%% trivial message exchange on the normal schedulers, and erlang:system_monitor watches for
%% long schedules. Results come as messages: no scheduler is held per waiting task.
%%
%% Attribution. long_schedule is wall time: on a loaded machine the OS preempting a
%% scheduler thread produces reports for any process (the probe's included). The NIF times
%% every entry of its own code on a normal scheduler (llama_nif:info/0, CPU and wall time):
%% a long schedule can only come from the NIF if that wall time reached the threshold.
-module(llama_nif_04_concurrency_tests).
-include_lib("eunit/include/eunit.hrl").

-import(llama_nif_test_lib, [chat/2, content/1]).

-define(TASKS, 64).
-define(LONG_SCHEDULE_MS, 5).
%% generous: the figure is printed; this only catches a scheduler blocked for real
-define(MAX_ROUND_TRIP_MS, 250).

concurrency_test_() ->
    {timeout, 600, fun sixty_four_tasks/0}.

sixty_four_tasks() ->
    %% one llama.cpp thread: on 2 cores its spinning workers would otherwise starve the BEAM
    S = llama_nif_test_lib:server(#{n_parallel => 4, n_ctx => 256, n_threads => 1}),
    Self = self(),
    Echo = spawn_link(fun echo/0),
    %% baseline: 200 samples of the same probe with the server idle
    Base = spawn_link(fun() -> probe(Echo, {0, 0, 0}, 200, Self) end),
    {BN, BMaxUs, BLateUs} = receive {stats, Base, BS} -> BS after 60000 -> error(no_baseline) end,
    Probe = spawn_link(fun() -> probe(Echo, {0, 0, 0}, infinity, Self) end),
    Prev = erlang:system_monitor(self(), [{long_schedule, ?LONG_SCHEDULE_MS}]),
    T0 = erlang:monotonic_time(millisecond),
    Workers = [spawn_link(fun() -> worker(S, Self, N) end) || N <- lists:seq(1, ?TASKS)],
    Results = [receive {done, W, R} -> R after 300000 -> error({no_result, W}) end || W <- Workers],
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    erlang:system_monitor(Prev),
    {N, MaxUs, MaxLateUs} = stop(Probe),
    Reports = long_schedules([]),
    #{normal_scheduler := #{calls := Calls, max_cpu_us := NifCpu, max_wall_us := NifWall}} = llama_nif_debug:info(),
    ok = llama_nif:destroy_server(S),

    ?assertEqual(?TASKS, length([ok || {ok, R} <- Results, byte_size(content(R)) > 0])),
    Touching = [R || R <- Reports, touches_llama_nif(R)],
    io:format(user, "~n    ~b concurrent tasks in ~b ms~n"
              "    process round trip on the normal schedulers (one per ms): ~b samples, max ~.3f ms "
              "(1 ms timer max lateness ~.3f ms)~n"
              "    same probe, server idle: ~b samples, max ~.3f ms (timer max lateness ~.3f ms)~n"
              "    NIF code on normal schedulers: ~b calls, max ~.1f us CPU, ~.1f us wall~n"
              "    long_schedule >= ~b ms: ~b reports, ~b with a llama_nif location~n",
              [?TASKS, Elapsed, N, MaxUs / 1000, MaxLateUs / 1000, BN, BMaxUs / 1000, BLateUs / 1000,
               Calls, NifCpu, NifWall,
               ?LONG_SCHEDULE_MS, length(Reports), length(Touching)]),
    [io:format(user, "    long_schedule: ~0p~n", [R]) || R <- Reports],
    ?assert(NifCpu < 1000),                                  % never holds a scheduler ~1 ms
    ?assert(NifWall < ?LONG_SCHEDULE_MS * 1000 orelse Touching =:= []),
    %% the round-trip bound below means something only if the probe ran through the load
    %% (thousands of samples on a quiet machine; tens when the machine is loaded)
    ?assert(N >= 10),
    ?assert(MaxUs / 1000 < ?MAX_ROUND_TRIP_MS).

stop(Pid) ->
    Pid ! {stop, self()},
    receive {stats, Pid, Stats} -> Stats after 30000 -> error(no_probe) end.

worker(S, Parent, N) ->
    %% half in sessions, half stateless; all chat (JSON + chat template on create)
    Sid = case N rem 2 of
              0 -> {ok, Id} = llama_nif:create_session(S, #{}), Id;
              1 -> 0
          end,
    {ok, T} = llama_nif:create_task(S, Sid, chat, chat(<<"Say a number.">>, 4)),
    Parent ! {done, self(), llama_nif:get_result(S, T, 290000)}.

echo() ->
    receive {ping, From, Ref} -> From ! {pong, Ref}, echo() end.

%% Every millisecond a round trip to the echo process, until Limit samples or a stop; also
%% how late the timer fired.
probe(_Echo, {Limit, _, _} = Acc, Limit, Parent) ->
    Parent ! {stats, self(), Acc};
probe(Echo, {N, Max, MaxLate} = Acc, Limit, Parent) ->
    T0 = erlang:monotonic_time(microsecond),
    receive
        {stop, From} -> From ! {stats, self(), Acc}
    after 1 ->
        T1 = erlang:monotonic_time(microsecond),
        Ref = make_ref(),
        Echo ! {ping, self(), Ref},
        receive {pong, Ref} -> ok end,
        Us = erlang:monotonic_time(microsecond) - T1,
        probe(Echo, {N + 1, max(Max, Us), max(MaxLate, T1 - T0 - 1000)}, Limit, Parent)
    end.

long_schedules(Acc) ->
    receive {monitor, Pid, long_schedule, Info} -> long_schedules([{Pid, Info} | Acc])
    after 0 -> lists:reverse(Acc)
    end.

touches_llama_nif({_, Info}) ->
    lists:any(fun({K, {llama_nif, _, _}}) when K =:= in; K =:= out -> true;
                 (_) -> false
              end, Info).
