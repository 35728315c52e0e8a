%% Chat with the application's model from any process.
-module(chat_app).
-export([ask/1, conversation/0, say/3, demo/0]).

%% One question, one answer (no history).
ask(Question) ->
    case llama_nif_server:chat(chat_app_llm, #{messages => [#{role => user, content => Question}],
                                               n_predict => 32, temperature => 0}) of
        {ok, R} -> {ok, llama_nif:text(R)};
        {error, _} = E -> E
    end.

%% A conversation owned by the calling process (closed when it exits).
conversation() ->
    llama_nif_server:open_session(chat_app_llm, #{system_prompt => "Be brief."}).

say(Session, Text, NPredict) ->
    Input = #{messages => [#{role => user, content => Text}], n_predict => NPredict, temperature => 0},
    case llama_nif_server:chat(chat_app_llm, Input, #{session => Session}) of
        {ok, R} -> {ok, llama_nif:text(R)};
        {error, _} = E -> E
    end.

%% Starts the application, runs two conversations at once, prints what each remembered.
demo() ->
    {ok, _} = application:ensure_all_started(chat_app),
    Parent = self(),
    Words = ["cobalt", "falcon"],
    [spawn_link(fun() ->
                        {ok, S} = conversation(),
                        {ok, _} = say(S, ["Remember the word ", W, ". Reply OK."], 4),
                        {ok, A} = say(S, "What word did I ask you to remember? Answer with the word only.", 6),
                        Parent ! {W, A}
                end) || W <- Words],
    [receive {W, A} -> io:format("~s: ~ts~n", [W, string:trim(A)]) end || W <- Words],
    ok.
