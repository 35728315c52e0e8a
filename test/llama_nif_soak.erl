%% Soak of the NIF: worker processes run every kind of generation task (one-shot, streamed,
%% in sessions), wait with short timeouts, cancel, and are killed at random by another
%% process. At the end every task of a worker that lived is accounted for (ended exactly
%% once), the server is idle with no session left, and the VM's memory is compared with the
%% start. `make soak-nif MINUTES=30`; llama_nif_07_soak_tests runs it for 20 seconds.
-module(llama_nif_soak).
-export([main/1, run/1]).

-define(WORKERS, 12).

%% erl -eval 'halt(llama_nif_soak:main(["30"]))': prints the report, 0 when it holds.
main([Minutes | Rest]) ->
    Opts = case Rest of
               [Cache | _] -> #{minutes => list_to_float_or_int(Minutes), cache_ram_mib => list_to_integer(Cache)};
               [] -> #{minutes => list_to_float_or_int(Minutes)}
           end,
    R = run(Opts),
    io:format("[soak-nif] ~p~n", [R]),
    case maps:get(ok, R) of true -> 0; false -> 1 end.

list_to_float_or_int(S) ->
    try list_to_float(S) catch error:badarg -> list_to_integer(S) end.

run(Opts) ->
    Minutes = maps:get(minutes, Opts, 1),
    Cfg0 = #{n_parallel => 4, n_ctx => 1024, max_queued_tasks => 64, log_level => error,
             model => llama_nif_debug:default_model_path()},
    Cfg = case Opts of #{cache_ram_mib := C} -> Cfg0#{cache_ram_mib => C}; _ -> Cfg0 end,
    {ok, S} = llama_nif:init_server(Cfg),
    MemStart = erlang:memory(total),
    RssStart = rss_mib(),
    Deadline = erlang:monotonic_time(millisecond) + round(Minutes * 60000),
    Self = self(),
    Killer = spawn_link(fun() -> killer(Self, Deadline) end),
    State0 = #{server => S, deadline => Deadline, workers => #{}, spawned => 0, killed => 0,
               open => #{}, ended => #{}, outcomes => #{}, duplicated => [], rss => [{0, RssStart}],
               started => erlang:monotonic_time(millisecond), next_sample => 0},
    State1 = lists:foldl(fun(_, St) -> start_worker(St) end, State0, lists:seq(1, ?WORKERS)),
    State = collect(State1),
    unlink(Killer),
    exit(Killer, kill),
    {ok, Status} = llama_nif:status(S),
    #{<<"tasks">> := Tasks, <<"sessions">> := Sessions} = Status,
    Idle = maps:get(<<"queued">>, Tasks) =:= 0 andalso maps:get(<<"running">>, Tasks) =:= 0
           andalso maps:get(<<"unfetched">>, Tasks) =:= 0,
    ok = llama_nif:destroy_server(S),
    erlang:garbage_collect(),
    Lost = maps:size(maps:get(open, State)),
    Dup = length(maps:get(duplicated, State)),
    #{ok => Lost =:= 0 andalso Dup =:= 0 andalso Idle andalso Sessions =:= 0,
      minutes => Minutes, processes_spawned => maps:get(spawned, State), processes_killed => maps:get(killed, State),
      outcomes => maps:get(outcomes, State), lost => Lost, duplicated => Dup,
      duplicated_examples => lists:sublist(maps:get(duplicated, State), 3),
      server_idle_at_end => Idle, sessions_left => Sessions,
      memory_total_start => MemStart, memory_total_end => erlang:memory(total),
      rss_mib_by_minute => lists:reverse(maps:get(rss, State)), vm_alive => true}.

%% ---- the collector (this process) ------------------------------------------------------

start_worker(St = #{server := S, deadline := D, workers := W, spawned := N}) ->
    Collector = self(),
    {Pid, Ref} = spawn_monitor(fun() -> rand:seed(exsss, {N, 7, 11}), worker(Collector, S, D) end),
    St#{workers := W#{Pid => Ref}, spawned := N + 1}.

collect(St = #{workers := W}) when map_size(W) =:= 0 ->
    St;
collect(St0) ->
    St = sample_rss(St0),
    receive
        {created, Pid, Tid} ->
            collect(St#{open := maps:put({Pid, Tid}, true, maps:get(open, St))});
        {ended, Pid, Tid, Outcome} ->
            Key = {Pid, Tid},
            case maps:is_key(Key, maps:get(ended, St)) of
                true -> collect(St#{duplicated := [{Key, Outcome} | maps:get(duplicated, St)]});
                false ->
                    Out = maps:update_with(Outcome, fun(V) -> V + 1 end, 1, maps:get(outcomes, St)),
                    collect(St#{open := maps:remove(Key, maps:get(open, St)),
                                ended := maps:put(Key, true, maps:get(ended, St)), outcomes := Out})
            end;
        {refused, Code} ->
            collect(St#{outcomes := maps:update_with({create_task, Code}, fun(V) -> V + 1 end, 1, maps:get(outcomes, St))});
        {duplicate, Pid, Tid, What} ->
            collect(St#{duplicated := [{{Pid, Tid}, What} | maps:get(duplicated, St)]});
        {kill_one, From} ->
            Pids = maps:keys(maps:get(workers, St)),
            case Pids of
                [] -> From ! none, collect(St);
                _ ->
                    Victim = lists:nth(rand:uniform(length(Pids)), Pids),
                    exit(Victim, kill),
                    From ! killed,
                    collect(St#{killed := maps:get(killed, St) + 1})
            end;
        {'DOWN', _Ref, process, Pid, Why} ->
            W = maps:remove(Pid, maps:get(workers, St)),
            St2 = case Why of
                      killed ->   % its tasks are the NIF's to cancel: not lost, not ours to count
                          Open = maps:filter(fun({P, _}, _) -> P =/= Pid end, maps:get(open, St)),
                          Orphans = maps:size(maps:get(open, St)) - maps:size(Open),
                          Out = maps:update_with(orphaned_by_kill, fun(V) -> V + Orphans end, Orphans,
                                                 maps:get(outcomes, St)),
                          St#{open := Open, outcomes := Out};
                      normal -> St;
                      Other -> St#{duplicated := [{crashed, Pid, Other} | maps:get(duplicated, St)]}
                  end,
            Now = erlang:monotonic_time(millisecond),
            St3 = St2#{workers := W},
            collect(case Now < maps:get(deadline, St) of
                        true -> start_worker(St3);
                        false -> St3
                    end)
    after 1000 ->
        collect(St)
    end.

sample_rss(St = #{started := T0, next_sample := Next, rss := Rss}) ->
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    case Elapsed >= Next of
        true -> St#{rss := [{Elapsed div 60000 + 1, rss_mib()} | Rss], next_sample := Next + 60000};
        false -> St
    end.

killer(Collector, Deadline) ->
    receive after 200 + rand:uniform(800) -> ok end,   % workload pacing, not synchronisation
    case erlang:monotonic_time(millisecond) < Deadline of
        true -> Collector ! {kill_one, self()}, receive _ -> ok end, killer(Collector, Deadline);
        false -> ok
    end.

rss_mib() ->
    {ok, B} = file:read_file("/proc/self/status"),
    [_, Rest] = binary:split(B, <<"VmRSS:">>),
    [Kb | _] = string:lexemes(binary_to_list(Rest), " \t\nkB"),
    list_to_integer(Kb) div 1024.

%% ---- workers ---------------------------------------------------------------------------

worker(C, S, Deadline) ->
    case erlang:monotonic_time(millisecond) < Deadline of
        false -> ok;
        true ->
            case rand:uniform(10) of
                N when N =< 4 -> one_shot(C, S, 0);
                N when N =< 6 -> stream(C, S);
                N when N =< 9 -> session(C, S);
                _ -> {ok, _} = llama_nif:status(S)
            end,
            worker(C, S, Deadline)
    end.

input() ->
    Topics = [<<"owls">>, <<"Erlang">>, <<"tea">>, <<"bridges">>, <<"snow">>],
    T = lists:nth(rand:uniform(length(Topics)), Topics),
    #{messages => [#{role => user, content => <<"Say something about ", T/binary>>}],
      max_tokens => lists:nth(rand:uniform(3), [4, 16, 48])}.

one_shot(C, S, Session) ->
    case llama_nif:create_task(S, Session, chat, input()) of
        {ok, Tid} ->
            C ! {created, self(), Tid},
            Outcome = case rand:uniform(4) of
                          1 ->      % a short wait, then cancel, then the final message
                              case llama_nif:get_result(S, Tid, rand:uniform(100)) of
                                  {error, {timeout, _}} ->
                                      llama_nif:cancel_task(S, Tid),
                                      outcome(llama_nif:get_result(S, Tid, 120000));
                                  R -> outcome(R)
                              end;
                          _ -> outcome(llama_nif:get_result(S, Tid, 120000))
                      end,
            C ! {ended, self(), Tid, Outcome},
            no_second_final(C, Tid);
        {error, {Code, _}} ->
            C ! {refused, Code}
    end.

stream(C, S) ->
    {ok, Tid} = llama_nif:stream_task(S, 0, chat, input()),
    C ! {created, self(), Tid},
    StopAfter = lists:nth(rand:uniform(3), [1, 3, 1000]),
    C ! {ended, self(), Tid, stream_loop(S, Tid, 0, StopAfter)},
    no_second_final(C, Tid).

stream_loop(S, Tid, N, StopAfter) when N >= StopAfter ->
    llama_nif:cancel_task(S, Tid),
    drain(Tid);
stream_loop(S, Tid, N, StopAfter) ->
    case llama_nif:next_chunk(Tid, 120000) of
        {chunk, _} -> stream_loop(S, Tid, N + 1, StopAfter);
        {done, _} -> stream_ok;
        {error, {Code, _}} -> {stream, Code}
    end.

drain(Tid) ->
    case llama_nif:next_chunk(Tid, 120000) of
        {chunk, _} -> drain(Tid);
        {done, _} -> stream_ok;
        {error, {Code, _}} -> {stream, Code}
    end.

session(C, S) ->
    {ok, Sid} = llama_nif:create_session(S, #{system_prompt => <<"One line answers.">>}, [{close_on_exit, true}]),
    [one_shot(C, S, Sid) || _ <- lists:seq(1, rand:uniform(3))],
    ok = llama_nif:close_session(S, Sid).

outcome({ok, _}) -> ok;
outcome({error, {Code, _}}) -> Code.

%% a final message must come once: nothing more for this task may be in the mailbox
no_second_final(C, Tid) ->
    receive
        {llama_done, Tid, _} -> C ! {duplicate, self(), Tid, second_done};
        {llama_error, Tid, _} -> C ! {duplicate, self(), Tid, second_error};
        {llama_chunk, Tid, _} -> C ! {duplicate, self(), Tid, chunk_after_final}
    after 0 -> ok
    end.
