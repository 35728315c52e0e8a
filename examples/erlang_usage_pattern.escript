#!/usr/bin/env escript
%% The API's basic "Erlang Usage Pattern", as originally specified, on the default model; the two
%% workers send their results back so that they can be printed.
%%
%%   make nif model && escript examples/erlang_usage_pattern.escript
%%
%% The model is $LLAMA_MODEL, else models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf.
-mode(compile).

main(_) ->
    load_llama_nif(),
    Parent = self(),
    ModelPath = list_to_binary(os:getenv("LLAMA_MODEL")),
    Config = #{n_parallel => 4, n_ctx => 2048, model => ModelPath},
    SessionConfig = #{cache_prompt => true, temperature => 0.7},
    Input1 = #{messages => [#{role => user, content => <<"Write a haiku about Erlang processes.">>}],
               n_predict => 64},
    Input2 = #{messages => [#{role => user, content => <<"In one sentence: what is a NIF?">>}],
               n_predict => 64},

    % Initialize server once
    {ok, Server} = llama_nif:init_server(Config),

    % Each user conversation gets its own session
    {ok, SessionId1} = llama_nif:create_session(Server, SessionConfig),
    {ok, SessionId2} = llama_nif:create_session(Server, SessionConfig),

    % Multiple processes can inference concurrently
    spawn(fun() ->
        {ok, TaskId} = llama_nif:create_task(Server, SessionId1, "chat", Input1),
        {ok, Result} = llama_nif:get_result(Server, TaskId, 30000),
        Parent ! {result, 1, Result}
    end),

    spawn(fun() ->
        {ok, TaskId} = llama_nif:create_task(Server, SessionId2, "chat", Input2),
        {ok, Result} = llama_nif:get_result(Server, TaskId, 30000),
        Parent ! {result, 2, Result}
    end),

    [print(N, receive {result, N, R} -> R after 60000 -> timeout end) || N <- [1, 2]],
    ok = llama_nif:destroy_server(Server).

print(N, #{<<"choices">> := [#{<<"message">> := #{<<"content">> := Text}} | _],
           <<"usage">> := #{<<"completion_tokens">> := Tokens}}) ->
    io:format("session ~b (~b tokens):~n~ts~n~n", [N, Tokens, Text]);
print(N, Other) ->
    io:format("session ~b: ~p~n", [N, Other]),
    halt(1).

%% llama_nif from this checkout: src/llama_nif.erl and the module it calls (llama_nif_events)
%% compiled in memory, priv/llama_nif.so.
load_llama_nif() ->
    Root = filename:dirname(filename:dirname(filename:absname(escript:script_name()))),
    os:putenv("LLAMA_NIF_SO", filename:join([Root, "priv", "llama_nif.so"])),
    [begin
         Src = filename:join([Root, "src", atom_to_list(M) ++ ".erl"]),
         {ok, M, Bin} = compile:file(Src, [binary, report]),
         {module, M} = code:load_binary(M, Src, Bin)
     end || M <- [llama_nif_events, llama_nif]],
    case os:getenv("LLAMA_MODEL") of
        false -> os:putenv("LLAMA_MODEL", filename:join([Root, "models", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"]));
        _ -> ok
    end.
