%% Text in, text out: strings (charlists) and iodata are text wherever the input is text,
%% or the error names the key; token ids only as {tokens, Ids}. llama_nif:text/1 and
%% chunk_text/1.
-module(llama_nif_09_text_tests).
-include_lib("eunit/include/eunit.hrl").

-import(llama_nif_test_lib, [content/1]).

text_test_() ->
    {setup, fun llama_nif_test_lib:server/0, fun llama_nif:destroy_server/1,
     fun(S) ->
         [{timeout, 300, {Name, fun() -> F(S) end}} ||
             {Name, F} <- [{"a charlist prompt is text, never token ids", fun charlist_prompt/1},
                           {"token ids only as {tokens, Ids}", fun token_prompt/1},
                           {"chat: charlist and iodata content, charlist role", fun chat_content/1},
                           {"session system_prompt and stop as charlists", fun session_and_stop/1},
                           {"tokenize content as a charlist", fun tokenize/1},
                           {"lists that are not text: the error names the key", fun not_text/1},
                           {"text/1 and chunk_text/1", fun text_helpers/1}]]
     end}.

embedding_test_() ->
    {timeout, 300, fun embedding_and_rerank/0}.

run(S, Type, Input) ->
    {ok, T} = llama_nif:create_task(S, 0, Type, Input),
    {ok, R} = llama_nif:get_result(S, T, 60000),
    R.

%% The bug this replaces: "Once" (a list of 4 integers) reached llama.cpp as 4 token ids.
charlist_prompt(S) ->
    Bin = run(S, completion, #{prompt => <<"Once upon a">>, n_predict => 4, temperature => 0}),
    Str = run(S, completion, #{prompt => "Once upon a", n_predict => 4, temperature => 0}),
    Io = run(S, completion, #{<<"prompt">> => ["Once", $\s, <<"upon">>, [" a"]], n_predict => 4, temperature => 0}),
    #{<<"tokens_evaluated">> := N} = Bin,
    ?assert(N < length("Once upon a")),
    [?assertMatch(#{<<"tokens_evaluated">> := N}, R) || R <- [Str, Io]],
    ?assertEqual(content(Bin), content(Str)),
    ?assertEqual(content(Bin), content(Io)),
    %% code points beyond Latin-1
    Keys = [<<"content">>, <<"tokens_evaluated">>],
    ?assertEqual(maps:with(Keys, run(S, completion, #{prompt => <<"日本語で"/utf8>>, n_predict => 2, temperature => 0})),
                 maps:with(Keys, run(S, completion, #{prompt => "日本語で", n_predict => 2, temperature => 0}))).

token_prompt(S) ->
    {ok, T} = llama_nif:create_task(S, 0, tokenize, #{content => <<"Once upon a">>}),
    {ok, #{<<"tokens">> := Ids}} = llama_nif:get_result(S, T, 0),
    ByIds = run(S, completion, #{prompt => {tokens, Ids}, n_predict => 4, temperature => 0}),
    ByText = run(S, completion, #{prompt => <<"Once upon a">>, n_predict => 4, temperature => 0}),
    ?assertMatch(#{<<"tokens_evaluated">> := N} when N =:= length(Ids), ByIds),
    ?assertEqual(content(ByText), content(ByIds)),
    %% a plain list of integers is text even when it could be ids: each one a character
    Keys = [<<"content">>, <<"tokens_evaluated">>],
    ?assertEqual(maps:with(Keys, run(S, completion, #{prompt => unicode:characters_to_binary(Ids), n_predict => 4,
                                                       temperature => 0})),
                 maps:with(Keys, run(S, completion, #{prompt => Ids, n_predict => 4, temperature => 0}))),
    ?assertMatch({error, {invalid_argument, <<"task input: prompt {tokens, Ids} needs", _/binary>>}},
                 llama_nif:create_task(S, 0, completion, #{prompt => {tokens, []}})),
    ?assertMatch({error, {invalid_argument, <<"task input: prompt {tokens, Ids} needs", _/binary>>}},
                 llama_nif:create_task(S, 0, completion, #{prompt => {tokens, [a]}})).

chat_content(S) ->
    Chat = fun(Msg) -> run(S, chat, #{messages => [Msg], n_predict => 6, temperature => 0}) end,
    Bin = Chat(#{role => user, content => <<"Say hello in French.">>}),
    ?assert(byte_size(llama_nif:text(Bin)) > 0),
    [?assertEqual(llama_nif:text(Bin), llama_nif:text(Chat(M)))
     || M <- [#{role => "user", content => "Say hello in French."},
              #{<<"role">> => <<"user">>, <<"content">> => ["Say ", <<"hello">>, [" in French."]]},
              #{role => user, content => [#{type => text, text => "Say hello in French."}]}]].

session_and_stop(S) ->
    {ok, Sid} = llama_nif:create_session(S, #{system_prompt => "Answer in one word.", stop => ["\n"]}),
    {ok, #{<<"config">> := #{<<"system_prompt">> := <<"Answer in one word.">>}}} = llama_nif:session_info(S, Sid),
    {ok, T} = llama_nif:create_task(S, 0, completion, #{prompt => "1, 2, 3, 4", stop => [",", "\n"],
                                                        n_predict => 16, temperature => 0}),
    {ok, R} = llama_nif:get_result(S, T, 60000),
    ?assertMatch(#{<<"stop_type">> := <<"word">>, <<"stopping_word">> := <<",">>}, R),
    %% a single string is one stop word, not a list of one-character ones
    {ok, T2} = llama_nif:create_task(S, 0, completion, #{prompt => "1, 2, 3, 4", stop => ", 6",
                                                         n_predict => 16, temperature => 0}),
    {ok, R2} = llama_nif:get_result(S, T2, 60000),
    ?assertMatch(#{<<"stop_type">> := <<"word">>, <<"stopping_word">> := <<", 6">>}, R2).

tokenize(S) ->
    Ids = fun(C) -> #{<<"tokens">> := I} = run(S, tokenize, #{content => C}), I end,
    Want = Ids(<<"héllo wörld"/utf8>>),
    ?assert(length(Want) > 2),
    ?assertEqual(Want, Ids("héllo wörld")),
    ?assertEqual(Want, Ids(["héllo wörld"])).     % a list of texts (here one)

not_text(S) ->
    Err = fun(Type, Input) ->
                  {error, {invalid_argument, D}} = llama_nif:create_task(S, 0, Type, Input),
                  D
          end,
    ?assertMatch(<<"task input: prompt must be text", _/binary>>, Err(completion, #{prompt => [-1]})),
    ?assertMatch(<<"task input: prompt must be text", _/binary>>, Err(completion, #{prompt => [16#110000]})),
    ?assertMatch(<<"task input: prompt must be text", _/binary>>, Err(completion, #{prompt => [$a | b]})),
    ?assertMatch(<<"task input: stop must be a proper list">>, Err(completion, #{prompt => "x", stop => [<<"a">> | b]})),
    ?assertMatch(<<"task input: messages[1].content must be text", _/binary>>,
                 Err(chat, #{messages => [#{role => user, content => "ok"}, #{role => user, content => [-5]}]})),
    ?assertMatch(<<"task input: messages[0].content[0].text must be text", _/binary>>,
                 Err(chat, #{messages => [#{role => user, content => [#{type => text, text => [-5]}]}]})),
    ?assertMatch(<<"task input: messages[0].role must be text", _/binary>>,
                 Err(chat, #{messages => [#{role => [-1], content => "x"}]})),
    ?assertMatch(<<"task input: stop[1] must be text", _/binary>>,
                 Err(completion, #{prompt => "x", stop => ["a", [-1]]})),
    ?assertMatch(<<"task input: grammar must be text", _/binary>>, Err(completion, #{prompt => "x", grammar => [-1]})),
    ?assertMatch(<<"task input: content must be text", _/binary>>, Err(tokenize, #{content => [-1]})),
    ?assertMatch(<<"task input: query must be text", _/binary>>, Err(rerank, #{query => [-1], documents => []})),
    ?assertMatch(<<"task input: documents[1] must be text", _/binary>>,
                 Err(rerank, #{query => "q", documents => ["a", [-1]]})),
    ?assertMatch({error, {invalid_argument, <<"session config: system_prompt must be text", _/binary>>}},
                 llama_nif:create_session(S, #{system_prompt => [-1]})),
    %% detokenize's tokens stay ids
    ?assertMatch(#{<<"content">> := <<_/binary>>}, run(S, detokenize, #{tokens => [9707]})).

text_helpers(S) ->
    {ok, T} = llama_nif:stream_task(S, 0, chat, #{messages => [#{role => user, content => "Count from 1 to 3."}],
                                                  n_predict => 8, temperature => 0}),
    {ok, [First | _] = Chunks, Result} = llama_nif:collect_stream(T, 60000),
    ?assertEqual(<<>>, llama_nif:chunk_text(First)),       % the role-only delta
    Text = llama_nif:text(Result),
    ?assert(byte_size(Text) > 0),
    ?assertEqual(Text, iolist_to_binary([llama_nif:chunk_text(C) || C <- Chunks])),
    {ok, T2} = llama_nif:stream_task(S, 0, completion, #{prompt => "1, 2,", n_predict => 3, temperature => 0}),
    {ok, Chunks2, Result2} = llama_nif:collect_stream(T2, 60000),
    ?assertEqual(llama_nif:text(Result2), iolist_to_binary([llama_nif:chunk_text(C) || C <- Chunks2])),
    ?assertError(badarg, llama_nif:text(#{<<"embedding">> => []})),
    ?assertError(badarg, llama_nif:chunk_text(not_a_chunk)).

embedding_and_rerank() ->
    Dir = filename:dirname(llama_nif_test_lib:model()),
    {ok, E} = llama_nif:init_server(#{n_parallel => 1, n_ctx => 512, log_level => error,
                                      model => filename:join(Dir, "minilm-l6-v2-f16.gguf"),
                                      model_config => #{embedding => true}}),
    Vectors = fun(C) -> run(E, embedding, #{content => C}) end,
    Two = Vectors([<<"a cat">>, <<"a dog">>]),
    ?assertMatch([_, _], Two),
    ?assertEqual(Two, Vectors(["a cat", ["a ", <<"dog">>]])),
    ?assertEqual(Vectors(<<"a cat">>), Vectors("a cat")),
    ?assertEqual(Vectors([<<"a cat">>]), Vectors(["a cat"])),
    ok = llama_nif:destroy_server(E),
    {ok, R} = llama_nif:init_server(#{n_parallel => 1, n_ctx => 512, log_level => error,
                                      model => filename:join(Dir, "minilm-l6-v2-rerank-f16.gguf"),
                                      model_config => #{embedding => true, pooling => rank}}),
    Bin = run(R, rerank, #{query => <<"a cat">>, documents => [<<"a kitten">>, <<"a car">>]}),
    ?assertEqual(Bin, run(R, rerank, #{query => "a cat", documents => ["a kitten", "a car"]})),
    ok = llama_nif:destroy_server(R).
