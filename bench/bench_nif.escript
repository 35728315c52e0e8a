#!/usr/bin/env escript
%% The NIF column of `make bench`: the same stdin protocol as the C program llama_nif_bench
%% (see bench/bench_main.c), with Erlang processes instead of C threads:
%%
%%   gen K N TAG TEXT     K processes, each its own session, create_task + get_result
%%   stream K N TAG TEXT  the same with stream_task + next_chunk (time to first token)
%%   chat K N TAG TEXT    K sessions, one streamed chat turn each (max_tokens N): users
%%                        arriving together (`make bench-users`)
%%   quit
%%
%% usage: escript bench/bench_nif.escript MODEL SERVER_CONFIG_JSON [MODEL_CONFIG_JSON]
-mode(compile).

main([Model, ServerCfg | Rest]) ->
    load_llama_nif(),
    ModelCfg = case Rest of [M | _] -> list_to_binary(M); [] -> null end,
    {ok, Server} = llama_nif:init_server(list_to_binary(ServerCfg)),
    case llama_nif:load_model(Server, Model, ModelCfg) of
        ok -> out("{\"ready\":true}");
        {error, {_, Why}} -> out(io_lib:format("{\"ready\":false,\"error\":\"~s\"}", [Why])), halt(1)
    end,
    loop(Server);
main(_) ->
    io:format(standard_error, "usage: bench_nif.escript MODEL SERVER_CONFIG_JSON [MODEL_CONFIG_JSON]~n", []),
    halt(2).

loop(Server) ->
    case io:get_line("") of
        eof -> ok;
        {error, _} -> ok;
        Line ->
            case string:split(string:trim(Line, trailing, "\r\n"), " ", all) of
                ["quit" | _] -> ok;
                [Cmd, K, N, Tag | Words] when Cmd =:= "gen"; Cmd =:= "stream"; Cmd =:= "chat" ->
                    gen(Server, Cmd, list_to_integer(K), list_to_integer(N), Tag, lists:join(" ", Words)),
                    loop(Server);
                _ ->
                    out("{\"error\":\"bad command\"}"),
                    loop(Server)
            end
    end.

%% K workers create their sessions first, then all are released at T0 (as the C barrier).
gen(Server, Cmd, K, N, Tag, Text) ->
    Parent = self(),
    Mode = list_to_atom(Cmd),
    Pids = [spawn_link(fun() -> worker(Server, Parent, Mode, I, N, Tag, Text) end) || I <- lists:seq(0, K - 1)],
    [receive {ready, P} -> ok end || P <- Pids],
    T0 = now_us(),
    [P ! {go, T0} || P <- Pids],
    Per = [receive {done, P, R} -> R end || P <- Pids],
    out(["{\"cmd\":\"", Cmd, "\",\"k\":", integer_to_list(K), ",\"n_predict\":", integer_to_list(N),
         ",\"per\":[", lists:join(",", Per), "]}"]).

worker(Server, Parent, Mode, I, N, Tag, Text) ->
    {ok, Session} = llama_nif:create_session(Server, #{}),
    Content = iolist_to_binary(["[", Tag, "-", integer_to_list(I), "] ", Text]),
    Input = case Mode of
        chat -> #{messages => [#{role => <<"user">>, content => Content}], max_tokens => N,
                  temperature => 0, ignore_eos => true};
        _ -> #{prompt => Content, n_predict => N, temperature => 0, ignore_eos => true}
    end,
    Parent ! {ready, self()},
    T0 = receive {go, T} -> T end,
    Submit = now_us() - T0,
    {Rc, First, Result} = case Mode of
        gen -> run_task(Server, Session, Input);
        stream -> run_stream(Server, Session, completion, Input, T0);
        chat -> run_stream(Server, Session, chat, Input, T0)
    end,
    Done = now_us() - T0,
    llama_nif:close_session(Server, Session),
    Tm = case Result of #{<<"timings">> := TM} -> TM; _ -> #{} end,
    G = fun(Key) -> case maps:get(Key, Tm, -1) of V when is_number(V) -> V; _ -> -1 end end,
    Parent ! {done, self(), io_lib:format(
        "{\"rc\":~s,\"submit_s\":~.6f,\"first_s\":~.6f,\"done_s\":~.6f,\"prompt_n\":~w,\"predicted_n\":~w,"
        "\"prompt_ms\":~.3f,\"predicted_ms\":~.3f,\"cache_n\":~w}",
        [Rc, Submit / 1.0e6, First, Done / 1.0e6, G(<<"prompt_n">>), G(<<"predicted_n">>),
         float(G(<<"prompt_ms">>)), float(G(<<"predicted_ms">>)), max(0, G(<<"cache_n">>))])}.

run_task(Server, Session, Input) ->
    case llama_nif:create_task(Server, Session, completion, Input) of
        {ok, Task} ->
            case llama_nif:get_result(Server, Task, infinity) of
                {ok, R} -> {"0", -1.0, R};
                {error, {Code, _}} -> {quote(Code), -1.0, #{}}
            end;
        {error, {Code, _}} -> {quote(Code), -1.0, #{}}
    end.

run_stream(Server, Session, Type, Input, T0) ->
    case llama_nif:stream_task(Server, Session, Type, Input) of
        {ok, Task} -> stream_loop(Task, T0, -1.0);
        {error, {Code, _}} -> {quote(Code), -1.0, #{}}    % refused (SERVER_BUSY...): a failed user
    end.

stream_loop(Task, T0, First) ->
    case llama_nif:next_chunk(Task, infinity) of
        {chunk, _} when First < 0 -> stream_loop(Task, T0, (now_us() - T0) / 1.0e6);
        {chunk, _} -> stream_loop(Task, T0, First);
        {done, R} when First < 0 -> {"0", (now_us() - T0) / 1.0e6, R};
        {done, R} -> {"0", First, R};
        {error, {Code, _}} -> {quote(Code), First, #{}}
    end.

quote(Atom) -> ["\"", atom_to_list(Atom), "\""].

now_us() -> erlang:monotonic_time(microsecond).

out(IoData) ->
    io:put_chars([IoData, "\n"]).

%% As examples/erlang_usage_pattern.escript: compile the modules from src/, NIF from priv/.
load_llama_nif() ->
    Root = filename:dirname(filename:dirname(filename:absname(escript:script_name()))),
    case os:getenv("LLAMA_NIF_SO") of
        false -> os:putenv("LLAMA_NIF_SO", filename:join([Root, "priv", "llama_nif.so"]));
        _ -> ok
    end,
    [begin
         Src = filename:join([Root, "src", atom_to_list(M) ++ ".erl"]),
         {ok, M, Bin} = compile:file(Src, [binary, report]),
         {module, M} = code:load_binary(M, Src, Bin)
     end || M <- [llama_nif_events, llama_nif]],
    ok.
