%% The NIF soak (llama_nif_soak, `make soak-nif` for the long run) for 20 seconds: workers
%% killed at random, every task of the others ended exactly once, the server idle with no
%% session left at the end, the VM alive.
-module(llama_nif_07_soak_tests).
-include_lib("eunit/include/eunit.hrl").

short_soak_test_() ->
    {timeout, 300, fun() ->
        R = llama_nif_soak:run(#{minutes => 1/3}),
        ?debugFmt("~p", [R]),
        ?assertMatch(#{lost := 0, duplicated := 0, server_idle_at_end := true, sessions_left := 0}, R),
        ?assert(maps:get(processes_killed, R) >= 5),
        ?assert(maps:get(ok, maps:get(outcomes, R), 0) >= 5)
    end}.
