-module(chat_app_sup).
-behaviour(supervisor).
-export([start_link/0, init/1]).

start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

init([]) ->
    Model = case os:getenv("LLAMA_MODEL") of
                V when V =:= false; V =:= "" ->
                    %% the checkout's model: llama_nif's priv dir is <checkout>/priv
                    Priv = code:priv_dir(llama_nif),
                    Root = case file:read_link(Priv) of
                               {ok, Target} -> filename:dirname(filename:absname(Target, filename:dirname(Priv)));
                               {error, _} -> filename:dirname(Priv)
                           end,
                    filename:join([Root, "models", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"]);
                V -> V
            end,
    Children = [llama_nif_server:child_spec(#{name => chat_app_llm, model => Model,
                                              config => #{n_parallel => 2, n_ctx => 1024, log_level => error}})],
    {ok, {#{strategy => one_for_one, intensity => 3, period => 60}, Children}}.
