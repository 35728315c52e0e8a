%% Bad input from Erlang: every case is {error, {Code, Detail}}; nothing raises, crashes or
%% hangs, and the server works afterwards.
-module(llama_nif_02_errors_tests).
-include_lib("eunit/include/eunit.hrl").

-import(llama_nif_test_lib, [model/0, chat/1, chat/2]).

-define(INVALID(Expr), ?assertMatch({error, {invalid_argument, D}} when is_binary(D), Expr)).

errors_test_() ->
    {setup, fun llama_nif_test_lib:server/0, fun llama_nif:destroy_server/1,
     fun(S) ->
         [{timeout, 120, {Name, fun() -> F(S) end}} ||
             {Name, F} <- [{"config errors", fun config_errors/1},
                           {"wrong term types", fun wrong_types/1},
                           {"invalid UTF-8", fun bad_utf8/1},
                           {"huge and deep input", fun huge_and_deep/1},
                           {"unknown atoms and options", fun unknown_atoms/1},
                           {"ids and timeouts", fun bad_ids/1},
                           {"input the core refuses", fun core_refuses/1},
                           {"not a server", fun not_a_server/1},
                           {"server still works", fun still_works/1}]]
     end}.

model_errors_test_() ->
    {timeout, 60, fun model_errors/0}.

destroyed_server_test_() ->
    {timeout, 60, fun destroyed_server/0}.

template_limits_test_() ->
    {timeout, 120, fun template_limits/0}.

config_errors(_S) ->
    ?assertEqual({error, {invalid_argument, <<"unknown key 'x' in server config">>}},
                 llama_nif:init_server(#{x => 1})),
    ?INVALID(llama_nif:init_server(#{n_parallel => 0})),
    ?INVALID(llama_nif:init_server(#{n_parallel => <<"4">>})),
    ?INVALID(llama_nif:init_server(<<"{not json">>)),
    ?INVALID(llama_nif:init_server(<<"[1, 2]">>)),
    ?INVALID(llama_nif:init_server(#{model => 42})),
    ?INVALID(llama_nif:init_server(#{model_config => #{}})).

wrong_types(S) ->
    [?INVALID(llama_nif:init_server(Bad)) || Bad <- [42, 1.5, {a, b}, self(), make_ref(), fun() -> ok end, [{n_ctx, 1}]]],
    Bad = [#{messages => {tuple}}, #{messages => [#{role => user, content => self()}]},
           #{prompt => <<"x">>, n_predict => 1 bsl 70}, #{prompt => [1 | 2]},
           #{prompt => <<"x">>, 12 => 1}, #{prompt => <<"x">>, "key" => 1},
           #{prompt => <<"x">>, n_predict => <<"8">>}, #{prompt => <<"x">>, stop => [[-1]]},
           #{prompt => <<1:3>>}, #{prompt => 'λ'}],
    [?INVALID(llama_nif:create_task(S, 0, completion, B)) || B <- Bad],
    ?assertEqual({error, {invalid_argument, <<"task input at .messages[0].content: a pid cannot be converted to JSON">>}},
                 llama_nif:create_task(S, 0, chat, #{messages => [#{role => user, content => self()}]})),
    ?INVALID(llama_nif:create_session(S, #{temperature => hot})),
    ?INVALID(llama_nif:create_session(S, 42)),
    ?INVALID(llama_nif:load_model(S, 42, #{})),
    ?INVALID(llama_nif:create_task(S, 0, 42, #{prompt => <<"x">>})),
    ?INVALID(llama_nif:create_task(S, 0, {chat}, #{prompt => <<"x">>})).

bad_utf8(S) ->
    ?assertEqual({error, {invalid_argument, <<"task input at .prompt: a binary that is not valid UTF-8">>}},
                 llama_nif:create_task(S, 0, completion, #{prompt => <<255, 254>>})),
    ?INVALID(llama_nif:create_task(S, 0, completion, #{<<255>> => 1})),
    ?INVALID(llama_nif:create_task(S, 0, completion, <<"{\"prompt\": \"", 192, 128, "\"}">>)),
    ?INVALID(llama_nif:create_task(S, 0, completion, <<"{\"prompt\": \"\\ud800\"}">>)),
    ?INVALID(llama_nif:create_task(S, 0, completion, <<"{\"prompt\": \"a\"}", 0>>)),
    ?INVALID(llama_nif:create_task(S, 0, <<"chat", 0>>, chat(<<"x">>))),
    ?INVALID(llama_nif:create_task(S, 0, [16#110000], chat(<<"x">>))),   % not a code point
    %% NUL inside a string is fine: it is escaped in the JSON
    {ok, T} = llama_nif:create_task(S, 0, completion, #{prompt => <<"a", 0, "b">>, n_predict => 1}),
    ?assertMatch({ok, _}, llama_nif:get_result(S, T, 30000)).

huge_and_deep(S) ->
    Huge = binary:copy(<<"a">>, 17 bsl 20),
    ?INVALID(llama_nif:create_task(S, 0, completion, #{prompt => Huge})),
    ?INVALID(llama_nif:create_task(S, 0, completion, <<"{\"prompt\": \"", Huge/binary, "\"}">>)),
    ?INVALID(llama_nif:create_task(S, 0, completion, #{prompt => <<"x">>, stop => lists:duplicate(1 bsl 20, <<"0123456789abcdefgh">>)})),
    Deep = lists:foldl(fun(_, Acc) -> [Acc] end, <<"x">>, lists:seq(1, 100)),
    ?INVALID(llama_nif:create_task(S, 0, completion, #{prompt => <<"x">>, logit_bias => Deep})),
    DeepJson = iolist_to_binary(["{\"prompt\": ", lists:duplicate(100000, $[), lists:duplicate(100000, $]), "}"]),
    ?INVALID(llama_nif:create_task(S, 0, completion, DeepJson)),
    ?INVALID(llama_nif:create_task(S, 0, binary:copy(<<"c">>, 1 bsl 20), #{prompt => <<"x">>})),
    ?INVALID(llama_nif:load_model(S, binary:copy(<<"m">>, 1 bsl 20), #{})).

unknown_atoms(S) ->
    ?assertMatch({error, {invalid_argument, <<"unknown task type 'poem'", _/binary>>}},
                 llama_nif:create_task(S, 0, poem, #{prompt => <<"x">>})),
    ?INVALID(llama_nif:create_task(S, 0, completion, #{prompt => <<"x">>}, #{format => xml})),
    ?INVALID(llama_nif:create_task(S, 0, completion, #{prompt => <<"x">>}, #{colour => red})),
    ?INVALID(llama_nif:create_task(S, 0, completion, #{prompt => <<"x">>}, #{stream => maybe})),
    ?INVALID(llama_nif:create_task(S, 0, completion, #{prompt => <<"x">>}, #{null => "nil"})),
    ?INVALID(llama_nif:create_task(S, 0, completion, #{prompt => <<"x">>}, not_options)),
    ?INVALID(llama_nif:create_task(S, 0, completion, #{prompt => <<"x">>}, [{a, b, c}])),
    ?INVALID(llama_nif:create_session(S, #{}, #{close_on_exit => sometimes})),
    ?INVALID(llama_nif:create_session(S, #{}, #{owner => not_a_pid, close_on_exit => true})),
    ?INVALID(llama_nif:status(S, #{format => yaml})),
    ?assertMatch({error, {invalid_argument, <<"unknown key 'colour' in chat input">>}},
                 llama_nif:create_task(S, 0, chat, (chat(<<"x">>))#{colour => red})).

bad_ids(S) ->
    ?assertMatch({error, {session_not_found, _}}, llama_nif:create_task(S, 999999, chat, chat(<<"x">>))),
    ?INVALID(llama_nif:create_task(S, -1, chat, chat(<<"x">>))),
    ?INVALID(llama_nif:create_task(S, 1 bsl 40, chat, chat(<<"x">>))),
    ?INVALID(llama_nif:create_task(S, one, chat, chat(<<"x">>))),
    ?assertMatch({error, {session_not_found, _}}, llama_nif:close_session(S, 999999)),
    ?INVALID(llama_nif:close_session(S, 0)),
    ?assertMatch({error, {session_not_found, _}}, llama_nif:session_info(S, 999999)),
    ?assertMatch({error, {task_not_found, _}}, llama_nif:cancel_task(S, 1 bsl 50)),
    ?INVALID(llama_nif:cancel_task(S, -5)),
    ?INVALID(llama_nif:cancel_task(S, <<"1">>)),
    ?assertMatch({error, {task_not_found, _}}, llama_nif:get_result(S, 1 bsl 50, 10)),
    ?INVALID(llama_nif:get_result(S, 1 bsl 70, 10)),
    ?INVALID(llama_nif:get_result(S, 1, -1)),
    ?INVALID(llama_nif:get_result(S, 1, forever)),
    ?INVALID(llama_nif:get_result(S, 1, 1 bsl 40)),
    %% a task is this process's: another process cannot wait for it
    {ok, T} = llama_nif:create_task(S, 0, completion, #{prompt => <<"x">>, n_predict => 2}),
    Self = self(),
    spawn(fun() -> Self ! {other, llama_nif:get_result(S, T, 100)} end),
    receive {other, R} -> ?INVALID(R) after 30000 -> error(no_reply) end,
    ?assertMatch({ok, _}, llama_nif:get_result(S, T, 30000)).

core_refuses(S) ->
    ?INVALID(llama_nif:create_task(S, 0, completion, #{n_predict => 4})),            % no prompt
    ?INVALID(llama_nif:create_task(S, 0, chat, #{messages => []})),
    ?INVALID(llama_nif:create_task(S, 0, chat, #{messages => [#{content => <<"no role">>}]})),
    ?INVALID(llama_nif:create_task(S, 0, completion, #{prompt => <<"x">>, top_p => 2.0})),
    %% a bad grammar is parsed by create_task itself
    ?INVALID(llama_nif:create_task(S, 0, completion, #{prompt => <<"x">>, grammar => <<"root ::= (">>})),
    %% a prompt beyond the slot's context is found when the slot starts: the task ends in an error
    {ok, T} = llama_nif:create_task(S, 0, completion, #{prompt => binary:copy(<<"hello ">>, 1500), n_predict => 4}),
    ?assertMatch({error, {inference_failed, _}}, llama_nif:get_result(S, T, 30000)),
    ?assertMatch({error, {not_supported, _}}, llama_nif:create_task(S, 0, embedding, #{content => <<"x">>})).

not_a_server(_S) ->
    [?INVALID(F(Bad)) || Bad <- [make_ref(), self(), 42, <<"server">>],
                         F <- [fun(B) -> llama_nif:create_session(B, #{}) end,
                               fun(B) -> llama_nif:create_task(B, 0, chat, chat(<<"x">>)) end,
                               fun(B) -> llama_nif:cancel_task(B, 1) end,
                               fun(B) -> llama_nif:close_session(B, 1) end,
                               fun(B) -> llama_nif:status(B) end,
                               fun(B) -> llama_nif:session_info(B, 1) end,
                               fun(B) -> llama_nif:load_model(B, model(), #{}) end,
                               fun(B) -> llama_nif:destroy_server(B) end,
                               fun(B) -> llama_nif:get_result(B, 1, 10) end]].

still_works(S) ->
    {ok, T} = llama_nif:create_task(S, 0, chat, chat(<<"Say hi">>)),
    ?assertMatch({ok, #{<<"choices">> := _}}, llama_nif:get_result(S, T, 30000)).

model_errors() ->
    {ok, S} = llama_nif:init_server(#{n_parallel => 1, n_ctx => 256}),
    ?assertMatch({error, {model_not_loaded, _}}, llama_nif:create_task(S, 0, chat, chat(<<"x">>))),
    ?assertMatch({error, {model_load_failed, _}}, llama_nif:load_model(S, <<"/nonexistent/model.gguf">>, #{})),
    ?assertMatch({error, {model_load_failed, _}}, llama_nif:load_model(S, code:which(?MODULE), #{})),
    ?INVALID(llama_nif:load_model(S, model(), #{bogus => 1})),
    ?INVALID(llama_nif:load_model(S, <<>>, #{})),
    ok = llama_nif:load_model(S, model(), #{}),
    ?assertMatch({error, {model_load_failed, _}}, llama_nif:load_model(S, model(), #{})),   % one per server
    ?assertMatch({error, {model_load_failed, _}},
                 llama_nif:init_server(#{model => <<"/nonexistent/model.gguf">>})),
    ok = llama_nif:destroy_server(S).

%% After destroy_server every call is {error, ...}; the term stays harmless.
destroyed_server() ->
    S = llama_nif_test_lib:server(#{n_parallel => 1}),
    {ok, Sid} = llama_nif:create_session(S, #{}),
    {ok, T} = llama_nif:create_task(S, Sid, chat, chat(<<"Hello">>, 400)),
    ok = llama_nif:destroy_server(S),
    ?assertMatch({error, {cancelled, <<"the server was destroyed">>}}, llama_nif:get_result(S, T, 5000)),
    Gone = {error, {invalid_argument, <<"the server was destroyed">>}},
    ?assertEqual({error, {invalid_argument, <<"the server was already destroyed">>}}, llama_nif:destroy_server(S)),
    ?assertEqual(Gone, llama_nif:create_session(S, #{})),
    ?assertEqual(Gone, llama_nif:create_task(S, Sid, chat, chat(<<"x">>))),
    ?assertEqual(Gone, llama_nif:cancel_task(S, T)),
    ?assertEqual(Gone, llama_nif:close_session(S, Sid)),
    ?assertEqual(Gone, llama_nif:status(S)),
    ?assertEqual(Gone, llama_nif:session_info(S, Sid)),
    ?assertEqual(Gone, llama_nif:load_model(S, model(), #{})),
    ?assertEqual(Gone, llama_nif:get_result(S, T, 10)).

%% A chat template at each nesting limit renders in create_task, on a dirty scheduler's small
%% stack (320 KiB by default, +sssdcpu); one past a limit is refused at load, the VM unharmed.
template_limits() ->
    Msgs = <<"{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
             "<|im_start|>assistant\n">>,
    Rec = fun(N) -> iolist_to_binary(["{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{% else %}x{% endif %}"
                                      "{% endmacro %}", Msgs, "{{ f(", integer_to_list(N), ") }}"]) end,
    Nest = fun(Open, Inner, Close, N) -> iolist_to_binary([lists:duplicate(N, Open), Inner, lists:duplicate(N, Close)]) end,
    AtLimits = [Rec(63),
                iolist_to_binary([Msgs, "{{ ", Nest("(", "1", ")", 100), " }}"]),
                Nest("{% if true %}", Msgs, "{% endif %}", 99),
                iolist_to_binary([Msgs, "{{ 1", lists:duplicate(149, "+1"), " }}"])],
    [begin
         {ok, S} = llama_nif:init_server(#{n_parallel => 1, n_ctx => 512, log_level => error}),
         ok = llama_nif:load_model(S, model(), #{chat_template => T}),
         {ok, Id} = llama_nif:create_task(S, 0, chat, chat(<<"hi">>, 1)),
         ?assertMatch({ok, #{<<"choices">> := _}}, llama_nif:get_result(S, Id, 30000)),
         ok = llama_nif:destroy_server(S)
     end || T <- AtLimits],
    {ok, S2} = llama_nif:init_server(#{n_parallel => 1, n_ctx => 512, log_level => none}),
    ?assertMatch({error, {invalid_argument, <<"'chat_template' in model config cannot be used: ", _/binary>>}},
                 llama_nif:load_model(S2, model(), #{chat_template => Rec(64)})),
    ?INVALID(llama_nif:load_model(S2, model(), #{chat_template => iolist_to_binary([Msgs, "{{ 1", lists:duplicate(100000, "+1"), " }}"])})),
    ok = llama_nif:load_model(S2, model(), #{}),
    ok = llama_nif:destroy_server(S2).
