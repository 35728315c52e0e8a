%% The API on the real model: the basic usage pattern, argument forms, results,
%% sessions, status.
-module(llama_nif_01_basic_tests).
-include_lib("eunit/include/eunit.hrl").

-import(llama_nif_test_lib, [model/0, server/0, server/1, chat/1, chat/2, completion/2, content/1]).

basic_test_() ->
    {setup, fun llama_nif_test_lib:server/0, fun llama_nif:destroy_server/1,
     fun(S) ->
         [{timeout, 120, {Name, fun() -> F(S) end}} ||
             {Name, F} <- [{"basic usage pattern", fun design_pattern/1},
                           {"input forms", fun input_forms/1},
                           {"task type forms", fun type_forms/1},
                           {"stateless completion", fun stateless_completion/1},
                           {"raw JSON results", fun raw_json/1},
                           {"session keeps the conversation", fun session_history/1},
                           {"get_result timeout, then the result", fun timeout_then_result/1},
                           {"cancel after a timeout: the message names no other task", fun timeout_cancel_message/1},
                           {"result fetched once", fun fetched_once/1},
                           {"status and session info", fun status_info/1},
                           {"close session", fun close_session/1},
                           {"tokenize and detokenize", fun tokenize_detokenize/1}]]
     end}.

%% The basic pattern: sessions made by one process, used by two others at once.
design_pattern(Server) ->
    Parent = self(),
    SessionConfig = #{cache_prompt => true, temperature => 0.7},
    Input1 = chat(<<"Name a color.">>),
    Input2 = chat(<<"Name an animal.">>),
    {ok, SessionId1} = llama_nif:create_session(Server, SessionConfig),
    {ok, SessionId2} = llama_nif:create_session(Server, SessionConfig),
    spawn(fun() ->
        {ok, TaskId} = llama_nif:create_task(Server, SessionId1, "chat", Input1),
        {ok, Result} = llama_nif:get_result(Server, TaskId, 30000),
        Parent ! {1, Result}
    end),
    spawn(fun() ->
        {ok, TaskId} = llama_nif:create_task(Server, SessionId2, "chat", Input2),
        {ok, Result} = llama_nif:get_result(Server, TaskId, 30000),
        Parent ! {2, Result}
    end),
    R1 = receive {1, A} -> A after 60000 -> error(no_result_1) end,
    R2 = receive {2, B} -> B after 60000 -> error(no_result_2) end,
    ?assert(byte_size(content(R1)) > 0),
    ?assert(byte_size(content(R2)) > 0),
    ?assertMatch(#{<<"object">> := <<"chat.completion">>, <<"usage">> := #{<<"completion_tokens">> := _}}, R1).

%% Maps with atom or binary keys, JSON binaries and JSON strings are the same input.
input_forms(S) ->
    Forms = [#{messages => [#{role => user, content => <<"Hi">>}], n_predict => 4, temperature => 0},
             #{<<"messages">> => [#{<<"role">> => <<"user">>, <<"content">> => <<"Hi">>}],
               <<"n_predict">> => 4, <<"temperature">> => 0.0},
             <<"{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"n_predict\": 4, \"temperature\": 0}">>,
             "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"n_predict\": 4, \"temperature\": 0}"],
    Texts = [begin
                 {ok, T} = llama_nif:create_task(S, 0, chat, F),
                 {ok, R} = llama_nif:get_result(S, T, 30000),
                 content(R)
             end || F <- Forms],
    [First | _] = Texts,
    ?assert(byte_size(First) > 0),
    ?assertEqual([First, First, First, First], Texts),   % temperature 0: same text
    %% server, session and model configs take the same forms
    {ok, S2} = llama_nif:init_server("{\"n_parallel\": 1, \"n_ctx\": 256}"),
    ?assertEqual({error, {model_not_loaded, <<"load a model before creating sessions">>}},
                 llama_nif:create_session(S2, null)),
    ok = llama_nif:load_model(S2, binary_to_list(model()), <<"{}">>),
    {ok, _} = llama_nif:create_session(S2, <<"{\"system_prompt\": \"Be brief.\"}">>),
    {ok, _} = llama_nif:create_session(S2, "{}"),
    {ok, _} = llama_nif:create_session(S2, undefined),
    ok = llama_nif:destroy_server(S2).

type_forms(S) ->
    [begin
         {ok, T} = llama_nif:create_task(S, 0, Type, completion(<<"1, 2, 3,">>, 3)),
         ?assertMatch({ok, #{<<"content">> := _}}, llama_nif:get_result(S, T, 30000))
     end || Type <- [completion, <<"completion">>, "completion"]].

stateless_completion(S) ->
    {ok, T} = llama_nif:create_task(S, 0, completion, completion(<<"The capital of France is">>, 4)),
    {ok, R} = llama_nif:get_result(S, T, 30000),
    ?assertMatch(#{<<"content">> := C, <<"tokens_predicted">> := 4} when is_binary(C), R),
    ?assertNot(maps:is_key(<<"generation_settings">>, R)).   % compact by default

raw_json(S) ->
    {ok, T} = llama_nif:create_task(S, 0, chat, chat(<<"Hi">>, 4), #{format => json}),
    {ok, R} = llama_nif:get_result(S, T, 30000),
    ?assert(is_binary(R)),
    ?assertMatch(<<"{", _/binary>>, R),
    ?assertNotEqual(nomatch, binary:match(R, <<"\"chat.completion\"">>)),
    {ok, St} = llama_nif:status(S, [{format, json}]),
    ?assertMatch(<<"{", _/binary>>, St).

%% Turn 2 of a session sees turn 1 (history in the core) and reuses its KV cache.
session_history(S) ->
    {ok, Sid} = llama_nif:create_session(S, #{system_prompt => <<"You are terse.">>}),
    {ok, T1} = llama_nif:create_task(S, Sid, chat, chat(<<"My name is Zorblax. Say OK.">>, 4)),
    {ok, _} = llama_nif:get_result(S, T1, 30000),
    {ok, T2} = llama_nif:create_task(S, Sid, chat, chat(<<"What is my name?">>, 8)),
    {ok, R2} = llama_nif:get_result(S, T2, 30000),
    #{<<"usage">> := #{<<"prompt_tokens_details">> := #{<<"cached_tokens">> := Cached}}} = R2,
    ?assert(Cached > 0),
    {ok, Info} = llama_nif:session_info(S, Sid),
    ?assertMatch(#{<<"task_count">> := 2, <<"message_count">> := 4}, Info),
    ok = llama_nif:close_session(S, Sid).

timeout_then_result(S) ->
    {ok, T} = llama_nif:create_task(S, 0, completion, completion(<<"Count: 1, 2,">>, 16)),
    ?assertMatch({error, {timeout, _}}, llama_nif:get_result(S, T, 0)),
    ?assertMatch({ok, #{<<"content">> := _}}, llama_nif:get_result(S, T, 30000)).

%% The NIF's task ids are not the core's: a cancelled task's message must not name a core id
%% (it said "task 4 was cancelled" for task 6).
timeout_cancel_message(S) ->
    Ids = [begin {ok, T} = llama_nif:create_task(S, 0, completion, completion(<<"Count: 1, 2,">>, 64)), T end
           || _ <- lists:seq(1, 3)],
    Last = lists:last(Ids),
    ?assertMatch({error, {timeout, _}}, llama_nif:get_result(S, Last, 0)),
    ok = llama_nif:cancel_task(S, Last),
    ?assertEqual({error, {cancelled, <<"cancelled by cancel_task">>}}, llama_nif:get_result(S, Last, 30000)),
    [?assertMatch({ok, _}, llama_nif:get_result(S, T, 60000)) || T <- Ids -- [Last]].

fetched_once(S) ->
    {ok, T} = llama_nif:create_task(S, 0, completion, completion(<<"A">>, 2)),
    {ok, _} = llama_nif:get_result(S, T, 30000),
    ?assertMatch({error, {task_not_found, _}}, llama_nif:get_result(S, T, 1000)),
    ?assertMatch({error, {task_not_found, _}}, llama_nif:cancel_task(S, T)).

status_info(S) ->
    {ok, St} = llama_nif:status(S),
    ?assertMatch(#{<<"state">> := <<"ready">>, <<"n_parallel">> := 2,
                   <<"slots">> := [#{<<"busy">> := _}, #{<<"busy">> := _}],
                   <<"model">> := #{<<"n_vocab">> := _}}, St),
    %% what runs: the CPU variant picked for this machine, from those built in
    #{<<"backend">> := #{<<"cpu_variant">> := Variant, <<"cpu_build">> := <<"portable">>,
                         <<"cpu_variants_built">> := [<<"haswell">> | _] = Built,
                         <<"system_info">> := <<"CPU : ", _/binary>>}} = St,
    ?assert(lists:member(Variant, Built)),
    {ok, Sid} = llama_nif:create_session(S, #{}),
    {ok, Info} = llama_nif:session_info(S, Sid),
    ?assertMatch(#{<<"task_count">> := 0, <<"running_task">> := null}, Info),
    %% JSON null is the atom null, or what the null option says
    ?assertMatch({ok, #{<<"slots">> := [#{<<"task">> := null} | _]}}, llama_nif:status(S)),
    ?assertMatch({ok, #{<<"slots">> := [#{<<"task">> := nil} | _]}}, llama_nif:status(S, #{null => nil})).

close_session(S) ->
    {ok, Sid} = llama_nif:create_session(S, #{}),
    ok = llama_nif:close_session(S, Sid),
    ?assertMatch({error, {session_not_found, _}}, llama_nif:session_info(S, Sid)),
    ?assertMatch({error, {session_not_found, _}}, llama_nif:create_task(S, Sid, chat, chat(<<"Hi">>))),
    ?assertMatch({error, {session_not_found, _}}, llama_nif:close_session(S, Sid)).

%% tokenize/detokenize finish inside create_task: the result message is there at once.
tokenize_detokenize(S) ->
    Text = <<"Hello from Erlang, 日本語"/utf8>>,
    {ok, T1} = llama_nif:create_task(S, 0, tokenize, #{content => Text, with_pieces => true}),
    {ok, #{<<"tokens">> := Pieces}} = llama_nif:get_result(S, T1, 0),
    Ids = [Id || #{<<"id">> := Id} <- Pieces],
    ?assert(length(Ids) > 3),
    {ok, T2} = llama_nif:create_task(S, 0, detokenize, #{tokens => Ids}),
    ?assertEqual({ok, #{<<"content">> => Text}}, llama_nif:get_result(S, T2, 0)),
    ?assertMatch({error, {invalid_argument, _}}, llama_nif:create_task(S, 0, detokenize, #{tokens => [-1]})),
    ?assertMatch({error, {invalid_argument, _}}, llama_nif:stream_task(S, 0, tokenize, #{content => Text})).
