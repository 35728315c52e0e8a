%% The compile writes EEP-48 doc chunks (rebar.config's post-compile hook): every exported
%% function of the public modules has a doc, or is hidden.
-module(llama_nif_10_docs_tests).
-include_lib("eunit/include/eunit.hrl").

docs_test_() ->
    [{atom_to_list(M), fun() -> documented(M) end}
     || M <- [llama_nif, llama_nif_server, llama_nif_events, llama_nif_debug]].

documented(M) ->
    {ok, {docs_v1, _, erlang, _, #{<<"en">> := _}, _, Entries}} = code:get_doc(M),
    Docs = maps:from_list([{{F, A}, D} || {{function, F, A}, _, _, D, _} <- Entries]),
    Exported = [FA || {F, _} = FA <- M:module_info(exports), F =/= module_info],
    Behaviour = [{init, 1}, {handle_call, 3}, {handle_cast, 2}, {handle_info, 2}, {terminate, 2}],
    Missing = [FA || FA <- Exported -- Behaviour,
                     not (is_map_key(FA, Docs) andalso
                          (maps:get(FA, Docs) =:= hidden orelse is_map_key(<<"en">>, maps:get(FA, Docs))))],
    ?assertEqual({M, []}, {M, Missing}).
