%% @doc A supervised llama_nif server: a gen_server that owns one NIF server (one loaded
%% model), started with a name, and called by that name from any process.
%%
%% ```
%% %% in a supervisor's child list
%% llama_nif_server:child_spec(#{name => my_llm,
%%                                model => <<"models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf">>,
%%                                config => #{n_parallel => 4, n_ctx => 4096}})
%%
%% %% from any process
%% {ok, Result} = llama_nif_server:chat(my_llm, <<"Name a color.">>),
%% Text = llama_nif:text(Result),
%% {ok, Session} = llama_nif_server:open_session(my_llm, #{system_prompt => <<"Be brief.">>}),
%% {ok, R1} = llama_nif_server:chat(my_llm, <<"Remember the word cobalt.">>, #{session => Session}),
%% {ok, Task} = llama_nif_server:stream(my_llm, chat, <<"Count to 5.">>),
%% {ok, Chunks, Final} = llama_nif:collect_stream(Task, 30000).
%% '''
%%
%% The model is loaded in init/1, so start_link/1 returns when the server can serve (or
%% `{error, Reason}' when the model cannot be loaded), and a supervisor's restart loads it
%% again. The NIF server lives only in this process: when the process exits, crashed or
%% killed, the NIF server is freed and its tasks end with `{cancelled, _}'.
%%
%% Calls block the caller only. The gen_server queues a task (a few milliseconds of
%% validation, template rendering and tokenization, on a dirty scheduler) with the caller
%% as the task's `reply_to'; the task's messages go straight to the caller, which waits for
%% them. So the gen_server never waits for inference, any number of calls run at once (as
%% many as the NIF server has slots; the rest queue in the core, first come first served),
%% and a caller that dies has its task cancelled by the NIF.
%%
%% Sessions keep a conversation. open_session/3 makes one owned by the caller (closed when
%% the caller exits; the default), by another process, or by the server (kept until
%% close_session/2 or the server's end). A session belongs to one run of the server: after
%% a restart, its calls give `{error, {session_not_found, _}}'.
%%
%% Inputs are as for llama_nif:create_task/5 (maps with atom or binary keys; text as binaries,
%% strings or iodata), and each call also takes a bare text or a message list. Results are
%% the maps of llama_nif:get_result/3; llama_nif:text/1 gives the generated text.
%%
%% Events. A task's end emits one `[llama_nif, task, stop]' event (llama_nif_events), in
%% the process that takes it: a blocking call (chat/3, ..., run/4, also on its timeout)
%% emits it itself, always with `duration'; a task of stream/4 or async/4 emits it when
%% llama_nif:next_chunk/2, llama_nif:collect_stream/2, llama_nif:get_result/3 or await/2
%% takes its end, with `duration' when that process started it (no `reply_to' elsewhere)
%% while a handler was attached. The server process itself emits nothing. Metadata:
%% `server', `type', `task_id', `session', `outcome' (and `error').
-module(llama_nif_server).
-behaviour(gen_server).

-export([start_link/1, child_spec/1, stop/1, stop/2,
         chat/2, chat/3, complete/2, complete/3, embed/2, embed/3, rerank/3, rerank/4,
         tokenize/2, tokenize/3, detokenize/2, detokenize/3,
         run/4, stream/3, stream/4, async/4, await/2, cancel/2,
         open_session/1, open_session/2, open_session/3, close_session/2,
         session_info/2, session_info/3, status/1, status/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([server_ref/0, start_args/0, session/0, call_opts/0]).

-type server_ref() :: atom() | pid() | {global, term()} | {via, module(), term()}.
%% A started server: its registered name, or a pid, or {global, _} / {via, _, _}.

-type start_args() :: #{name => atom() | {local, atom()} | {global, term()} | {via, module(), term()},
                        model := file:name_all(),
                        config => map(),
                        model_config => map()}.
%% name (optional): an atom (registered locally), {local, A}, {global, T} or {via, M, T};
%% model: the GGUF path; config: the NIF server config (llama_nif:init_server/1: n_parallel,
%% n_ctx, n_threads, ...); model_config: as for llama_nif:load_model/3.

-opaque session() :: {llama_session, reference(), llama_nif:session_id()}.
%% A session of one run of a server.

-type call_opts() :: #{session => session() | none,
                       timeout => timeout(),
                       format => map | json,
                       null => atom()}.
%% session: the session to run in (default none: stateless); timeout: ms or infinity for the
%% whole call (default 60000); on timeout the task is cancelled. format, null: as for
%% llama_nif:create_task/5.

-type reason() :: llama_nif:reason().

-define(DEFAULT_TIMEOUT, 60000).

%%% ---- starting -------------------------------------------------------------------------

%% @doc A child spec for a supervisor: id is the name (else llama_nif_server), a permanent
%% worker, 30 s to shut down (tasks in flight are cancelled then).
-spec child_spec(start_args()) -> supervisor:child_spec().
child_spec(Args) when is_map(Args) ->
    #{id => maps:get(id, Args, maps:get(name, Args, ?MODULE)),
      start => {?MODULE, start_link, [maps:remove(id, Args)]},
      restart => permanent,
      shutdown => 30000,
      type => worker,
      modules => [?MODULE]}.

%% @doc Starts the server, linked to the caller, and loads the model before returning.
-spec start_link(start_args()) -> {ok, pid()} | {error, term()}.
start_link(#{model := _} = Args) ->
    case maps:get(name, Args, undefined) of
        undefined -> gen_server:start_link(?MODULE, Args, []);
        Name when is_atom(Name) -> gen_server:start_link({local, Name}, ?MODULE, Args, []);
        Name -> gen_server:start_link(Name, ?MODULE, Args, [])
    end;
start_link(Args) ->
    {error, {invalid_argument, {<<"start args need model => Path">>, Args}}}.

%% @doc Stops the server (its NIF server is destroyed; tasks in flight end as cancelled).
-spec stop(server_ref()) -> ok.
stop(Ref) ->
    stop(Ref, infinity).

%% @doc Stops the server within Timeout (its NIF server is destroyed).
-spec stop(server_ref(), timeout()) -> ok.
stop(Ref, Timeout) ->
    gen_server:stop(Ref, normal, Timeout).

%%% ---- calls ----------------------------------------------------------------------------

%% @equiv chat(Ref, Input, #{})
-spec chat(server_ref(), term()) -> {ok, term()} | {error, reason()}.
chat(Ref, Input) ->
    chat(Ref, Input, #{}).

%% @doc A chat turn. Input: a text (the user's message), a list of messages
%% (`#{role => user, content => Text}'), or a chat input map (messages, n_predict,
%% temperature, ...). In a session, the messages are the new turn: the session adds its
%% history before them.
-spec chat(server_ref(), term(), call_opts() | list()) -> {ok, term()} | {error, reason()}.
chat(Ref, Input, Opts) ->
    run(Ref, chat, chat_input(Input), Opts).

%% @equiv complete(Ref, Input, #{})
-spec complete(server_ref(), term()) -> {ok, term()} | {error, reason()}.
complete(Ref, Input) ->
    complete(Ref, Input, #{}).

%% @doc A completion. Input: a text (the prompt), `{tokens, Ids}', or a completion input map.
-spec complete(server_ref(), term(), call_opts() | list()) -> {ok, term()} | {error, reason()}.
complete(Ref, Input, Opts) ->
    run(Ref, completion, input(prompt, Input), Opts).

%% @equiv embed(Ref, Input, #{})
-spec embed(server_ref(), term()) -> {ok, term()} | {error, reason()}.
embed(Ref, Input) ->
    embed(Ref, Input, #{}).

%% @doc Embeddings (the model must be loaded with `model_config => #{embedding => true}').
%% Input: a text, a list of texts, or an embedding input map.
-spec embed(server_ref(), term(), call_opts() | list()) -> {ok, term()} | {error, reason()}.
embed(Ref, Input, Opts) ->
    run(Ref, embedding, input(content, Input), Opts).

%% @equiv rerank(Ref, Query, Documents, #{})
-spec rerank(server_ref(), term(), [term()]) -> {ok, term()} | {error, reason()}.
rerank(Ref, Query, Documents) ->
    rerank(Ref, Query, Documents, #{}).

%% @doc Scores documents against a query (a reranker model: `pooling => rank').
-spec rerank(server_ref(), term(), [term()], call_opts() | list()) -> {ok, term()} | {error, reason()}.
rerank(Ref, Query, Documents, Opts) ->
    run(Ref, rerank, #{query => Query, documents => Documents}, Opts).

%% @equiv tokenize(Ref, Input, #{})
-spec tokenize(server_ref(), term()) -> {ok, term()} | {error, reason()}.
tokenize(Ref, Input) ->
    tokenize(Ref, Input, #{}).

%% @doc Token ids of a text (`#{<<"tokens">> => [Id]}'). Input: a text or a tokenize input map.
-spec tokenize(server_ref(), term(), call_opts() | list()) -> {ok, term()} | {error, reason()}.
tokenize(Ref, Input, Opts) ->
    run(Ref, tokenize, input(content, Input), Opts).

%% @equiv detokenize(Ref, Input, #{})
-spec detokenize(server_ref(), term()) -> {ok, term()} | {error, reason()}.
detokenize(Ref, Input) ->
    detokenize(Ref, Input, #{}).

%% @doc The text of token ids (`#{<<"content">> => Text}'). Input: a list of ids or a map.
-spec detokenize(server_ref(), term(), call_opts() | list()) -> {ok, term()} | {error, reason()}.
detokenize(Ref, Ids, Opts) when is_list(Ids) ->
    detokenize(Ref, #{tokens => Ids}, Opts);
detokenize(Ref, Input, Opts) ->
    run(Ref, detokenize, Input, Opts).

%% @doc Runs a task of any type (llama_nif:task_type()) and waits for its result, in the
%% calling process. On timeout the task is cancelled and the call gives
%% `{error, {timeout, _}}'; if the server exits meanwhile, `{error, {cancelled, _}}'.
%% Either way the call emits the task's `[llama_nif, task, stop]' event (llama_nif_events).
-spec run(server_ref(), llama_nif:task_type(), llama_nif:json_arg(), call_opts() | list()) ->
    {ok, term()} | {error, reason()}.
run(Ref, Type, Input, Opts) ->
    case call_opts(Opts, #{}) of
        {ok, Timeout, Session, TaskOpts} ->
            Start = erlang:monotonic_time(),
            Deadline = deadline(Timeout),
            case call(Ref, {task, Type, Session, Input, TaskOpts#{stream => false}}, Timeout) of
                {ok, TaskId, Pid} ->
                    Outcome = wait(Pid, TaskId, Deadline),
                    ok = llama_nif_events:task_stop(Start, Outcome, #{server => Ref, type => Type, task_id => TaskId,
                                                                      session => Session}),
                    Outcome;
                {error, _} = E -> E
            end;
        {error, _} = E -> E
    end.

%% @equiv stream(Ref, Type, Input, #{})
-spec stream(server_ref(), llama_nif:task_type(), term()) -> {ok, llama_nif:task_id()} | {error, reason()}.
stream(Ref, Type, Input) ->
    stream(Ref, Type, Input, #{}).

%% @doc Starts a streaming task (chat or completion) whose messages go to the caller, or to
%% `reply_to => Pid': `{llama_chunk, Id, Chunk}'... then `{llama_done, Id, Result}' or
%% `{llama_error, Id, Reason}'. Read them with llama_nif:next_chunk/2 or
%% llama_nif:collect_stream/2; cancel/2 stops the task. The receiving process owns the
%% task: its exit cancels it. Input: as for chat/3 (type chat) or complete/3 (completion).
%% The call that takes the task's end emits its `[llama_nif, task, stop]' event.
-spec stream(server_ref(), llama_nif:task_type(), term(), map() | list()) ->
    {ok, llama_nif:task_id()} | {error, reason()}.
stream(Ref, Type, Input, Opts) ->
    task(Ref, Type, Input, Opts, true).

%% @doc Queues a task and returns its id at once; the result goes to the caller (or
%% `reply_to => Pid') as `{llama_done, Id, Result}' / `{llama_error, Id, Reason}' (and
%% chunks before it with `stream => true'). await/2 waits for it in that process.
-spec async(server_ref(), llama_nif:task_type(), term(), map() | list()) ->
    {ok, llama_nif:task_id()} | {error, reason()}.
async(Ref, Type, Input, Opts) ->
    task(Ref, Type, Input, Opts, undefined).

%% @doc Waits for the result of a task started by async/4 (in the process it replies to).
%% On timeout the task goes on. Taking the result emits the task's
%% `[llama_nif, task, stop]' event (llama_nif_events).
-spec await(llama_nif:task_id(), timeout()) -> {ok, term()} | {error, reason()}.
await(TaskId, Timeout) ->
    case llama_nif:take_end(TaskId, Timeout) of
        timeout -> {error, {timeout, <<"no result within the timeout; the task goes on">>}};
        Outcome -> Outcome
    end.

%% @doc Cancels a task; its receiver gets `{llama_error, Id, {cancelled, _}}'.
-spec cancel(server_ref(), llama_nif:task_id()) -> ok | {error, reason()}.
cancel(Ref, TaskId) ->
    call(Ref, {cancel, TaskId}, ?DEFAULT_TIMEOUT).

task(Ref, Type, Input, Opts, Stream) ->
    case call_opts(Opts, #{reply_to => self(), stream => Stream}) of
        {ok, Timeout, Session, TaskOpts} ->
            In = case llama_nif_type(Type) of
                     chat -> chat_input(Input);
                     completion -> input(prompt, Input);
                     _ -> Input
                 end,
            Start = erlang:monotonic_time(),
            case call(Ref, {task, Type, Session, In, TaskOpts}, Timeout) of
                {ok, TaskId, _Pid} ->
                    %% for the task's event, when its end is received here (next_chunk/2,
                    %% await/2); the server process that created it receives nothing
                    case TaskOpts of
                        #{reply_to := Self} when Self =:= self() ->
                            ok = llama_nif_events:task_started(TaskId, Start, #{type => Type, server => Ref,
                                                                                session => Session});
                        #{} -> ok
                    end,
                    {ok, TaskId};
                {error, _} = E -> E
            end;
        {error, _} = E -> E
    end.

%%% ---- sessions -------------------------------------------------------------------------

%% @equiv open_session(Ref, #{}, #{})
-spec open_session(server_ref()) -> {ok, session()} | {error, reason()}.
open_session(Ref) ->
    open_session(Ref, #{}, #{}).

%% @equiv open_session(Ref, Config, #{})
-spec open_session(server_ref(), llama_nif:json_arg()) -> {ok, session()} | {error, reason()}.
open_session(Ref, Config) ->
    open_session(Ref, Config, #{}).

%% @doc Opens a session (Config: system_prompt, keep_history, and task defaults such as
%% temperature). Options: owner: the caller (default), a pid, or `server'. A session owned by
%% a process is closed when that process exits; one owned by the server lives until
%% close_session/2 or the server's end.
-spec open_session(server_ref(), llama_nif:json_arg(), #{owner => pid() | server} | list()) ->
    {ok, session()} | {error, reason()}.
open_session(Ref, Config, Opts) ->
    case llama_nif:options(Opts, #{owner => self()}) of
        {ok, #{owner := Owner}} when is_pid(Owner); Owner =:= server ->
            call(Ref, {open_session, Config, Owner}, ?DEFAULT_TIMEOUT);
        {ok, _} -> bad(<<"owner must be a pid or server">>);
        {error, _} = E -> E
    end.

%% @doc Closes a session now; its tasks in flight end as cancelled.
-spec close_session(server_ref(), session()) -> ok | {error, reason()}.
close_session(Ref, Session) ->
    call(Ref, {session, close, Session}, ?DEFAULT_TIMEOUT).

%% @equiv session_info(Ref, Session, #{})
-spec session_info(server_ref(), session()) -> {ok, term()} | {error, reason()}.
session_info(Ref, Session) ->
    session_info(Ref, Session, #{}).

%% @doc The session's state (llama_nif:session_info/3): message and task counts, slot,
%% config. Options: format, null (as for llama_nif:status/2).
-spec session_info(server_ref(), session(), map() | list()) -> {ok, term()} | {error, reason()}.
session_info(Ref, Session, Opts) ->
    call(Ref, {session, {info, Opts}, Session}, ?DEFAULT_TIMEOUT).

%% @equiv status(Ref, #{})
-spec status(server_ref()) -> {ok, term()} | {error, reason()}.
status(Ref) ->
    status(Ref, #{}).

%% @doc The NIF server's status (llama_nif:status/2): slots, queue, totals, model.
-spec status(server_ref(), map() | list()) -> {ok, term()} | {error, reason()}.
status(Ref, Opts) ->
    call(Ref, {status, Opts}, ?DEFAULT_TIMEOUT).

%%% ---- the caller's side ----------------------------------------------------------------

call(Ref, Request, Timeout) ->
    try
        gen_server:call(Ref, Request, Timeout)
    catch
        exit:{timeout, _} ->
            {error, {timeout, <<"the llama_nif_server did not answer within the timeout">>}};
        exit:{Why, _} ->
            {error, {server_down, iolist_to_binary(io_lib:format("no llama_nif_server ~0tp (~0tp)", [Ref, Why]))}}
    end.

%% Waits for the task's end; the server's pid is monitored, since its exit frees the NIF
%% server: the task then ends as cancelled, and that message is on its way.
wait(Pid, TaskId, Deadline) ->
    MRef = erlang:monitor(process, Pid),
    receive
        {llama_done, TaskId, Result} ->
            erlang:demonitor(MRef, [flush]),
            {ok, Result};
        {llama_error, TaskId, Reason} ->
            erlang:demonitor(MRef, [flush]),
            {error, Reason};
        {'DOWN', MRef, process, Pid, Why} ->
            receive
                {llama_done, TaskId, Result} -> {ok, Result};
                {llama_error, TaskId, Reason} -> {error, Reason}
            after 5000 ->
                {error, {cancelled, iolist_to_binary(io_lib:format("the llama_nif_server exited (~0tp)", [Why]))}}
            end
    after remaining(Deadline) ->
        erlang:demonitor(MRef, [flush]),
        _ = catch gen_server:call(Pid, {cancel, TaskId}, 5000),
        %% a cancel sends the task's end at once (or the task had just ended): take it
        receive
            {llama_done, TaskId, _} -> ok;
            {llama_error, TaskId, _} -> ok
        after 5000 -> ok
        end,
        {error, {timeout, iolist_to_binary(["task ", integer_to_list(TaskId), " not finished within the "
                                            "timeout; it was cancelled"])}}
    end.

deadline(infinity) -> infinity;
deadline(Ms) -> erlang:monotonic_time(millisecond) + Ms.

remaining(infinity) -> infinity;
remaining(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).

call_opts(Opts, Extra) ->
    Defaults = maps:merge(#{session => none, timeout => ?DEFAULT_TIMEOUT, format => map, null => null}, Extra),
    case llama_nif:options(Opts, Defaults) of
        {ok, #{timeout := T}} when not (T =:= infinity orelse (is_integer(T) andalso T >= 0)) ->
            bad(<<"timeout must be infinity or a non-negative integer (ms)">>);
        {ok, #{stream := undefined} = O} ->
            call_opts_out(maps:remove(stream, O));
        {ok, O} ->
            call_opts_out(O);
        {error, _} = E -> E
    end.

call_opts_out(#{timeout := T, session := S} = O) ->
    {ok, T, S, maps:without([timeout, session], O)}.


%% A bare text or a message list is a chat input; a map is the input itself.
chat_input(M) when is_map(M) -> M;
chat_input([M | _] = Messages) when is_map(M) -> #{messages => Messages};
chat_input(Text) -> #{messages => [#{role => user, content => Text}]}.

input(_Key, M) when is_map(M) -> M;
input(Key, Value) -> #{Key => Value}.

llama_nif_type(T) when is_atom(T) -> T;
llama_nif_type(T) when is_binary(T) -> try binary_to_existing_atom(T, utf8) catch _:_ -> other end;
llama_nif_type(T) when is_list(T) -> try list_to_existing_atom(T) catch _:_ -> other end;
llama_nif_type(_) -> other.

bad(Detail) ->
    {error, {invalid_argument, Detail}}.

%%% ---- gen_server -----------------------------------------------------------------------

%% @private
init(#{model := Model} = Args) ->
    process_flag(trap_exit, true),   % terminate/2 destroys the NIF server on shutdown
    Config = maps:get(config, Args, #{}),
    ModelConfig = maps:get(model_config, Args, #{}),
    case is_map(Config) andalso is_map(ModelConfig) of
        false ->
            {stop, {invalid_argument, <<"config and model_config must be maps">>}};
        true ->
            case llama_nif:init_server(Config#{model => Model, model_config => ModelConfig}) of
                {ok, Server} ->
                    {ok, #{server => Server, run => make_ref()}};
                {error, Reason} ->
                    {stop, Reason}
            end
    end.

%% @private
handle_call({task, Type, Session, Input, Opts}, {Caller, _}, #{server := S} = State) ->
    Reply = case session_id(Session, State) of
                {ok, Sid} ->
                    TaskOpts = maps:merge(#{reply_to => Caller}, Opts),
                    case llama_nif:create_task(S, Sid, Type, Input, TaskOpts) of
                        {ok, TaskId} -> {ok, TaskId, self()};
                        {error, _} = E -> E
                    end;
                {error, _} = E -> E
            end,
    {reply, Reply, State};
handle_call({cancel, TaskId}, _From, #{server := S} = State) ->
    {reply, llama_nif:cancel_task(S, TaskId), State};
handle_call({open_session, Config, Owner}, _From, #{server := S, run := Run} = State) ->
    Result = case Owner of
                 server -> llama_nif:create_session(S, Config);
                 Pid -> llama_nif:create_session(S, Config, #{close_on_exit => true, owner => Pid})
             end,
    Reply = case Result of
                {ok, Sid} -> {ok, {llama_session, Run, Sid}};
                {error, _} = E -> E
            end,
    {reply, Reply, State};
handle_call({session, What, Session}, _From, #{server := S} = State) ->
    Reply = case session_id(Session, State) of
                {ok, 0} -> bad(<<"not a session">>);
                {ok, Sid} when What =:= close -> llama_nif:close_session(S, Sid);
                {ok, Sid} -> {info, Opts} = What, llama_nif:session_info(S, Sid, Opts);
                {error, _} = E -> E
            end,
    {reply, Reply, State};
handle_call({status, Opts}, _From, #{server := S} = State) ->
    {reply, llama_nif:status(S, Opts), State};
handle_call(_Other, _From, State) ->
    {reply, bad(<<"unknown request">>), State}.

%% @private
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
handle_info(_Msg, State) ->
    {noreply, State}.

%% @private
terminate(_Reason, #{server := S}) ->
    _ = llama_nif:destroy_server(S),
    ok.

session_id(none, _State) -> {ok, 0};
session_id({llama_session, Run, Sid}, #{run := Run}) -> {ok, Sid};
session_id({llama_session, _, Sid}, _State) ->
    {error, {session_not_found, iolist_to_binary(["session ", integer_to_list(Sid), " belongs to an "
                                                  "earlier run of this server (it was restarted)"])}};
session_id(_, _State) ->
    bad(<<"session must be a session from open_session or none">>).
