%% Streaming as messages ({llama_chunk, Id, C}... {llama_done, Id, R}) and cancellation.
-module(llama_nif_03_stream_tests).
-include_lib("eunit/include/eunit.hrl").

-import(llama_nif_test_lib, [chat/2, completion/2, content/1, chunk_text/1]).

stream_test_() ->
    {setup, fun llama_nif_test_lib:server/0, fun llama_nif:destroy_server/1,
     fun(S) ->
         [{timeout, 120, {Name, fun() -> F(S) end}} ||
             {Name, F} <- [{"chat stream: chunks add up to the result", fun chat_stream/1},
                           {"completion stream", fun completion_stream/1},
                           {"stream key in the input", fun stream_key/1},
                           {"raw JSON chunks", fun raw_chunks/1},
                           {"cancel stops a stream", fun cancel_stream/1},
                           {"cancel a plain task", fun cancel_plain/1},
                           {"cancel from another process", fun cancel_elsewhere/1},
                           {"no chunk after a cancelled stream's end", fun nothing_after_the_end/1},
                           {"stream error ends with llama_error", fun stream_error/1}]]
     end}.

chat_stream(S) ->
    {ok, Sid} = llama_nif:create_session(S, #{}),
    {ok, T} = llama_nif:stream_task(S, Sid, chat, chat(<<"Count from 1 to 5.">>, 12)),
    {ok, Chunks, Result} = llama_nif:collect_stream(T, 30000),
    ?assert(length(Chunks) >= 2),
    [?assertMatch(#{<<"object">> := <<"chat.completion.chunk">>}, C) || C <- Chunks],
    Text = iolist_to_binary([chunk_text(C) || C <- Chunks]),
    ?assertEqual(content(Result), Text),
    ?assert(byte_size(Text) > 0),
    %% nothing else arrives for this task
    receive {_, T, _} = Late -> error({late_message, Late}) after 0 -> ok end.

completion_stream(S) ->
    {ok, T} = llama_nif:stream_task(S, 0, completion, completion(<<"1, 2, 3,">>, 6)),
    {ok, Chunks, #{<<"content">> := Final}} = llama_nif:collect_stream(T, 30000),
    ?assertEqual(Final, iolist_to_binary([chunk_text(C) || C <- Chunks])).

stream_key(S) ->
    {ok, T} = llama_nif:create_task(S, 0, completion, (completion(<<"a b c">>, 3))#{stream => true}),
    ?assertMatch({chunk, _}, llama_nif:next_chunk(T, 30000)),
    {ok, _, _} = llama_nif:collect_stream(T, 30000),
    %% the option wins over the key
    {ok, T2} = llama_nif:create_task(S, 0, completion, (completion(<<"a b c">>, 3))#{stream => true}, #{stream => false}),
    ?assertMatch({done, #{<<"content">> := _}}, llama_nif:next_chunk(T2, 30000)).

raw_chunks(S) ->
    {ok, T} = llama_nif:stream_task(S, 0, chat, chat(<<"Hi">>, 4), #{format => json}),
    {ok, Chunks, Result} = llama_nif:collect_stream(T, 30000),
    [?assertMatch(<<"{", _/binary>>, C) || C <- [Result | Chunks]].

%% After the first chunk, cancel: the stream ends with {llama_error, Id, {cancelled, _}} and
%% no llama_done; the slot serves the next task.
cancel_stream(S) ->
    {ok, T} = llama_nif:stream_task(S, 0, completion, completion(<<"Once upon a time">>, 400)),
    ?assertMatch({chunk, _}, llama_nif:next_chunk(T, 30000)),
    %% status names the task by the id create_task gave
    {ok, #{<<"slots">> := Busy}} = llama_nif:status(S),
    ?assertEqual([T], [Id || #{<<"busy">> := true, <<"task">> := Id} <- Busy]),
    ok = llama_nif:cancel_task(S, T),
    ?assertMatch({error, {cancelled, _}, _}, drain(T)),
    ?assertMatch({error, {task_not_found, _}}, llama_nif:cancel_task(S, T)),
    {ok, #{<<"slots">> := Slots}} = llama_nif:status(S),
    ?assertEqual([false, false], [B || #{<<"busy">> := B} <- Slots]),
    {ok, T2} = llama_nif:create_task(S, 0, completion, completion(<<"Next">>, 2)),
    ?assertMatch({ok, _}, llama_nif:get_result(S, T2, 30000)).

drain(T) ->
    case llama_nif:collect_stream(T, 30000) of
        {ok, _, R} -> {done, R};
        {error, Reason, Chunks} -> {error, Reason, Chunks}
    end.

cancel_plain(S) ->
    {ok, T} = llama_nif:create_task(S, 0, completion, completion(<<"Once upon a time">>, 400)),
    ok = llama_nif:cancel_task(S, T),
    ?assertMatch({error, {cancelled, _}}, llama_nif:get_result(S, T, 30000)).

%% Any process holding the server may cancel; the creator gets the error.
cancel_elsewhere(S) ->
    {ok, T} = llama_nif:stream_task(S, 0, completion, completion(<<"Once upon a time">>, 400)),
    {chunk, _} = llama_nif:next_chunk(T, 30000),
    Self = self(),
    spawn(fun() -> Self ! {cancelled, llama_nif:cancel_task(S, T)} end),
    receive {cancelled, R} -> ?assertEqual(ok, R) after 30000 -> error(no_cancel) end,
    ?assertMatch({error, {cancelled, _}, _}, drain(T)).

%% The cancel's {llama_error, ...} is sent by the cancelling process's thread while the
%% driver thread may be sending a chunk of the same task: no chunk may come after the end.
%% A later task's result comes from the driver thread, after anything it had for T.
nothing_after_the_end(S) ->
    lists:foreach(
      fun(_) ->
          {ok, T} = llama_nif:stream_task(S, 0, completion, completion(<<"Once upon a time">>, 400)),
          {chunk, _} = llama_nif:next_chunk(T, 30000),
          ok = llama_nif:cancel_task(S, T),
          ?assertMatch({error, {cancelled, _}, _}, drain(T)),
          {ok, T2} = llama_nif:create_task(S, 0, completion, completion(<<"Next">>, 1)),
          {ok, _} = llama_nif:get_result(S, T2, 30000),
          receive {_, T, _} = Late -> error({late_message, Late}) after 0 -> ok end
      end, lists:seq(1, 25)).

%% A failure inside the core (a prompt beyond the slot's context, found when the slot
%% starts) ends the stream.
stream_error(S) ->
    {ok, T} = llama_nif:stream_task(S, 0, completion, #{prompt => binary:copy(<<"hello ">>, 1500), n_predict => 4}),
    ?assertMatch({error, {inference_failed, _}, []}, drain(T)).
