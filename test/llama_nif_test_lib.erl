%% Helpers shared by the EUnit modules: the model (fails, never skips, when missing), a
%% loaded server, inputs and result accessors.
-module(llama_nif_test_lib).
-export([model/0, server/0, server/1, chat/1, chat/2, completion/2, content/1,
         chunk_text/1, await_down/1, flush/0]).

model() ->
    P = llama_nif_debug:default_model_path(),
    case filelib:is_regular(P) of
        true -> P;
        false -> erlang:error({model_missing, P, "set LLAMA_MODEL or run `make model`"})
    end.

server() ->
    server(#{}).

%% small contexts keep the tests quick on 2 cores
server(Config) ->
    {ok, S} = llama_nif:init_server(maps:merge(#{n_parallel => 2, n_ctx => 512, model => model(), log_level => error}, Config)),
    S.

chat(Text) ->
    chat(Text, 8).

chat(Text, N) ->
    #{messages => [#{role => user, content => Text}], n_predict => N, temperature => 0}.

completion(Text, N) ->
    #{prompt => Text, n_predict => N, temperature => 0}.

content(#{<<"choices">> := [#{<<"message">> := #{<<"content">> := C}} | _]}) -> C;
content(#{<<"content">> := C}) -> C.

chunk_text(#{<<"choices">> := [#{<<"delta">> := #{<<"content">> := C}} | _]}) when is_binary(C) -> C;
chunk_text(#{<<"content">> := C}) when is_binary(C) -> C;
chunk_text(_) -> <<>>.

%% {Pid, Ref} from spawn_monitor/1: the exit reason.
await_down({Pid, Ref}) ->
    receive {'DOWN', Ref, process, Pid, Why} -> Why after 60000 -> error(no_down) end.

flush() ->
    receive _ -> flush() after 0 -> ok end.
