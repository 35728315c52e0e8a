%% llama_nif_server under a supervisor, on the real model: called by name from many
%% processes at once, each with its own session; callers and the server killed; streams
%% and reply_to.
-module(llama_nif_08_server_tests).
-behaviour(supervisor).
-include_lib("eunit/include/eunit.hrl").

-export([init/1]).

-define(LLM, llama_nif_test_llm).      % 4 slots
-define(ONE, llama_nif_test_llm1).     % 1 slot: a running task holds every other one back

-define(WORDS, [<<"apple">>, <<"banana">>, <<"cobalt">>, <<"dragon">>, <<"falcon">>, <<"garnet">>,
                <<"harbor">>, <<"igloo">>, <<"jasmine">>, <<"kettle">>, <<"lemon">>, <<"meadow">>,
                <<"nickel">>, <<"orchid">>, <<"pepper">>, <<"quartz">>]).

%% the supervisor of these tests
init(Children) ->
    {ok, {#{strategy => one_for_one, intensity => 5, period => 60}, Children}}.

server_test_() ->
    {setup, fun start/0, fun stop/1,
     fun(Sup) ->
         [{timeout, 600, {Name, fun() -> F(Sup) end}} ||
             {Name, F} <- [{"16 processes call by name at once, each session keeps its history", fun sixteen_sessions/1},
                           {"streaming to the caller; to another process with reply_to", fun streaming/1},
                           {"async with reply_to, await in that process", fun async_reply_to/1},
                           {"sessions owned by the caller close with it; by the server, they stay", fun session_owners/1},
                           {"a call's timeout cancels its task", fun call_timeout/1},
                           {"errors", fun errors/1},
                           {"events: [llama_nif, task, stop] per call, to attached handlers", fun events/1},
                           {"a caller killed mid-task: its task is cancelled, the server serves on", fun caller_killed/1},
                           {"the server killed: the supervisor restarts it, and it serves again", fun server_killed/1}]]
     end}.

start() ->
    Model = llama_nif_test_lib:model(),
    Children = [llama_nif_server:child_spec(#{name => ?LLM, model => Model,
                                              config => #{n_parallel => 4, n_ctx => 2048, log_level => error}}),
                llama_nif_server:child_spec(#{name => ?ONE, model => Model,
                                              config => #{n_parallel => 1, n_ctx => 1024, log_level => error}})],
    {ok, Sup} = supervisor:start_link(?MODULE, Children),
    unlink(Sup),
    Sup.

stop(Sup) ->
    Ref = monitor(process, Sup),
    exit(Sup, shutdown),
    receive {'DOWN', Ref, process, Sup, _} -> ok after 60000 -> error(supervisor_not_down) end.

say(Text, N) ->
    #{messages => [#{role => user, content => Text}], n_predict => N, temperature => 0}.

%% Each process opens its own session, tells it a word, then asks for it back.
sixteen_sessions(_Sup) ->
    Parent = self(),
    Pids = [spawn_monitor(fun() ->
                                  {ok, Session} = llama_nif_server:open_session(?LLM, #{}),
                                  Opts = #{session => Session, timeout => 300000},
                                  {ok, R1} = llama_nif_server:chat(?LLM, say(<<"Remember the word ", W/binary, ". Reply OK.">>, 4), Opts),
                                  {ok, R2} = llama_nif_server:chat(?LLM, say(<<"What word did I ask you to remember? "
                                                                             "Answer with the word only.">>, 6), Opts),
                                  {ok, Info} = llama_nif_server:session_info(?LLM, Session),
                                  Parent ! {self(), W, llama_nif:text(R1), llama_nif:text(R2), Info}
                          end) || W <- ?WORDS],
    Answers = [receive
                   {Pid, W, First, Answer, Info} -> {W, First, Answer, Info}
               after 600000 -> error({no_answer, W})
               end || {{Pid, _}, W} <- lists:zip(Pids, ?WORDS)],
    [normal = llama_nif_test_lib:await_down(PM) || PM <- Pids],
    [begin
         ?assert(byte_size(First) > 0),
         ?assertEqual({W, W}, {W, string:lowercase(string:trim(Answer, both, " .\n"))}),
         ?assertMatch({W, #{<<"message_count">> := 4, <<"task_count">> := 2}}, {W, Info})
     end || {W, First, Answer, Info} <- Answers].

streaming(_Sup) ->
    {ok, T} = llama_nif_server:stream(?LLM, chat, <<"Count from 1 to 5.">>),
    {ok, Chunks, Result} = llama_nif:collect_stream(T, 60000),
    ?assert(length(Chunks) >= 2),
    Text = iolist_to_binary([llama_nif:chunk_text(C) || C <- Chunks]),
    ?assertEqual(llama_nif:text(Result), Text),
    ?assert(byte_size(Text) > 0),
    %% the chunks of a stream started here go to another process
    Parent = self(),
    Reader = spawn(fun() ->
                           receive {go, Id} -> Parent ! {read, Id, llama_nif:collect_stream(Id, 60000)} end
                   end),
    {ok, T2} = llama_nif_server:stream(?LLM, completion, #{prompt => <<"1, 2, 3,">>, n_predict => 6, temperature => 0},
                                       #{reply_to => Reader}),
    Reader ! {go, T2},
    receive
        {read, T2, {ok, Chunks2, #{<<"content">> := Final}}} ->
            ?assertEqual(Final, iolist_to_binary([llama_nif:chunk_text(C) || C <- Chunks2]))
    after 120000 -> error(no_stream_read)
    end,
    {messages, Left} = process_info(self(), messages),
    ?assertEqual([], [M || M <- Left, element(1, M) =:= llama_chunk orelse element(1, M) =:= llama_done]).

async_reply_to(_Sup) ->
    Parent = self(),
    Waiter = spawn(fun() -> receive {task, Id} -> Parent ! {awaited, llama_nif_server:await(Id, 120000)} end end),
    {ok, T} = llama_nif_server:async(?LLM, chat, say(<<"Say hello.">>, 4), #{reply_to => Waiter}),
    Waiter ! {task, T},
    receive {awaited, R} -> ?assertMatch({ok, #{<<"object">> := <<"chat.completion">>}}, R)
    after 120000 -> error(no_result)
    end,
    %% and to the caller itself
    {ok, T2} = llama_nif_server:async(?LLM, completion, #{prompt => <<"A">>, n_predict => 2}, #{}),
    ?assertMatch({ok, #{<<"content">> := _}}, llama_nif_server:await(T2, 120000)).

%% A session owned by a caller is closed when the caller exits: its task in flight (here
%% replying to this process) ends as cancelled by the close. A server-owned one stays.
session_owners(_Sup) ->
    Parent = self(),
    Long = #{prompt => <<"Once upon a time">>, n_predict => 400, ignore_eos => true},
    {Owner, _} = OM = spawn_monitor(fun() ->
                                            {ok, S} = llama_nif_server:open_session(?LLM, #{}),
                                            {ok, Kept} = llama_nif_server:open_session(?LLM, #{}, #{owner => server}),
                                            {ok, T} = llama_nif_server:async(?LLM, completion, Long,
                                                                             #{session => S, reply_to => Parent}),
                                            Parent ! {opened, self(), S, Kept, T}
                                    end),
    {Session, Kept, T} = receive {opened, Owner, S, K, Tid} -> {S, K, Tid} after 60000 -> error(no_session) end,
    normal = llama_nif_test_lib:await_down(OM),
    {llama_session, _, Sid} = Session,
    Closed = iolist_to_binary(["session ", integer_to_list(Sid), " was closed"]),
    ?assertEqual({error, {cancelled, Closed}}, llama_nif_server:await(T, 60000)),
    ?assertMatch({error, {session_not_found, _}}, llama_nif_server:session_info(?LLM, Session)),
    {ok, _} = llama_nif_server:chat(?LLM, say(<<"Hi">>, 2), #{session => Kept}),
    ?assertMatch({ok, #{<<"message_count">> := 2}}, llama_nif_server:session_info(?LLM, Kept)),
    ok = llama_nif_server:close_session(?LLM, Kept),
    ?assertMatch({error, {session_not_found, _}}, llama_nif_server:session_info(?LLM, Kept)).

call_timeout(_Sup) ->
    {error, {timeout, Msg}} = llama_nif_server:complete(?LLM, #{prompt => <<"Once upon a time">>, n_predict => 400,
                                                                ignore_eos => true}, #{timeout => 200}),
    ?assertMatch({match, _}, re:run(Msg, "was cancelled")),
    %% the task's end message was taken: nothing is left for it
    {messages, Left} = process_info(self(), messages),
    ?assertEqual([], [M || M <- Left, is_tuple(M), lists:member(element(1, M), [llama_chunk, llama_done, llama_error])]).

errors(_Sup) ->
    ?assertMatch({error, {invalid_argument, <<"unknown option colour">>}},
                 llama_nif_server:chat(?LLM, <<"Hi">>, #{colour => red})),
    ?assertMatch({error, {invalid_argument, _}}, llama_nif_server:chat(?LLM, <<"Hi">>, #{timeout => -1})),
    ?assertMatch({error, {invalid_argument, _}}, llama_nif_server:chat(?LLM, <<"Hi">>, #{session => 3})),
    ?assertMatch({error, {invalid_argument, <<"task input: messages[0].content must be text", _/binary>>}},
                 llama_nif_server:chat(?LLM, [#{role => user, content => [-1]}])),
    ?assertMatch({error, {invalid_argument, _}}, llama_nif_server:open_session(?LLM, #{}, #{owner => nobody})),
    ?assertMatch({error, {session_not_found, _}},
                 llama_nif_server:chat(?LLM, <<"Hi">>, #{session => {llama_session, make_ref(), 1}})),
    ?assertMatch({error, {server_down, _}}, llama_nif_server:chat(no_such_llm, <<"Hi">>)),
    ?assertMatch({error, {invalid_argument, _}}, llama_nif_server:start_link(#{name => x})),
    %% a model that cannot be loaded: start_link says why (the process is gone: on OTP 25 its
    %% exit reaches the linked caller too)
    process_flag(trap_exit, true),
    ?assertMatch({error, {model_load_failed, _}},
                 quietly(fun() -> llama_nif_server:start_link(#{model => <<"/nonexistent.gguf">>,
                                                                 config => #{log_level => none}}) end)),
    receive {'EXIT', _, {model_load_failed, _}} -> ok after 10000 -> ok end,
    process_flag(trap_exit, false).

%% without the crash and supervisor reports of an exit the test causes
quietly(Fun) ->
    #{level := Level} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, none),
    try Fun() after logger:set_primary_config(level, Level) end.

events(_Sup) ->
    Self = self(),
    Id = {?MODULE, make_ref()},
    ok = llama_nif_events:attach(Id, [llama_nif, task, stop],
                                 fun(E, M, Meta, Tag) -> Self ! {Tag, E, M, Meta} end, event),
    ?assertEqual({error, already_exists}, llama_nif_events:attach(Id, [llama_nif, task, stop], fun(_, _, _, _) -> ok end, x)),
    try
        {ok, R} = llama_nif_server:chat(?LLM, say(<<"Say hello.">>, 4)),
        #{<<"usage">> := #{<<"completion_tokens">> := Generated, <<"prompt_tokens">> := Prompt}} = R,
        receive
            {event, [llama_nif, task, stop], M, Meta} ->
                ?assertMatch(#{server := ?LLM, type := chat, session := none, outcome := ok, task_id := _}, Meta),
                ?assertMatch(#{generated_tokens := Generated, prompt_tokens := Prompt}, M),
                #{duration := D, queue_time := Q, prompt_time := P, generation_time := G} = M,
                ?assert(P > 0 andalso G > 0 andalso Q >= 0),
                ?assert(D >= P + G)
        after 0 -> error(no_event)
        end,
        {error, {timeout, _}} = llama_nif_server:complete(?LLM, #{prompt => <<"Once upon a time">>, n_predict => 400,
                                                                  ignore_eos => true}, #{timeout => 100}),
        receive
            {event, _, M2, #{outcome := timeout, type := completion, error := {timeout, _}}} ->
                %% the cancelled task's end carries no counts: only the call's own measurement
                ?assertEqual([duration], maps:keys(M2))
        after 0 -> error(no_timeout_event)
        end,
        %% a handler that raises is detached; the call is not disturbed
        Bad = {?MODULE, bad},
        ok = llama_nif_events:attach(Bad, [llama_nif, task, stop], fun(_, _, _, _) -> error(oops) end, x),
        {ok, #{<<"tokens">> := _}} = quietly(fun() -> llama_nif_server:tokenize(?LLM, <<"hi">>) end),
        ?assertNot(lists:keymember(Bad, 1, llama_nif_events:list_handlers())),
        receive {event, _, _, #{type := tokenize, outcome := ok}} -> ok after 0 -> error(no_tokenize_event) end
    after
        llama_nif_events:detach(Id)
    end,
    ?assertEqual({error, not_found}, llama_nif_events:detach(Id)).

%% One slot: the killed caller's task holds it until cancelled, so the next call can only
%% finish after the cancel, and the totals count that call alone as completed.
caller_killed(_Sup) ->
    {ok, #{<<"totals">> := #{<<"tasks_completed">> := Done0}}} = llama_nif_server:status(?ONE),
    Parent = self(),
    {Caller, _} = CM = spawn_monitor(fun() ->
        {ok, T} = llama_nif_server:stream(?ONE, completion, #{prompt => <<"Once upon a time">>, n_predict => 900,
                                                               ignore_eos => true}),
        {chunk, _} = llama_nif:next_chunk(T, 60000),
        Parent ! {generating, self(), T},
        llama_nif:collect_stream(T, 600000)
    end),
    T = receive {generating, Caller, Id} -> Id after 120000 -> error(not_generating) end,
    {ok, #{<<"slots">> := [#{<<"task">> := T}]}} = llama_nif_server:status(?ONE),
    exit(Caller, kill),
    killed = llama_nif_test_lib:await_down(CM),
    {ok, R} = llama_nif_server:chat(?ONE, say(<<"Say hello.">>, 4), #{timeout => 120000}),
    ?assert(byte_size(llama_nif:text(R)) > 0),
    ?assertMatch({ok, #{<<"slots">> := [#{<<"task">> := null}],
                        <<"tasks">> := #{<<"running">> := 0, <<"queued">> := 0},
                        <<"totals">> := #{<<"tasks_completed">> := Done}}} when Done =:= Done0 + 1,
                 llama_nif_server:status(?ONE)).

%% The NIF server lives in the gen_server only: killing it frees the NIF server (the blocked
%% caller's task ends as cancelled), the supervisor starts a new one, and old sessions are
%% refused.
server_killed(Sup) ->
    Servers = maps:get(servers, llama_nif_debug:info()),
    Old = whereis(?ONE),
    {ok, OldSession} = llama_nif_server:open_session(?ONE, #{}, #{owner => server}),
    CM = spawn_monitor(fun() ->
        exit({result, llama_nif_server:complete(?ONE, #{prompt => <<"Once upon a time">>, n_predict => 900,
                                                         ignore_eos => true}, #{timeout => 300000})})
    end),
    running = wait_running(?ONE, erlang:monotonic_time(millisecond) + 60000),
    OM = {Old, monitor(process, Old)},
    New = quietly(fun() ->
                          exit(Old, kill),
                          killed = llama_nif_test_lib:await_down(OM),
                          restarted(Sup, Old)
                  end),
    ?assertMatch({result, {error, {cancelled, _}}}, llama_nif_test_lib:await_down(CM)),
    ?assertEqual(New, whereis(?ONE)),
    %% the old NIF server was freed, the new one replaces it
    ?assert(llama_nif_debug:wait_servers(Servers, 30000)),
    ?assertEqual(Servers, maps:get(servers, llama_nif_debug:info())),
    {ok, R} = llama_nif_server:chat(?ONE, say(<<"Say hello.">>, 4), #{timeout => 120000}),
    ?assert(byte_size(llama_nif:text(R)) > 0),
    ?assertMatch({error, {session_not_found, <<"session ", _/binary>>}},
                 llama_nif_server:chat(?ONE, <<"Hi">>, #{session => OldSession})).

%% Until the one slot runs a task (status round trips, bounded by a deadline).
wait_running(Name, Deadline) ->
    case llama_nif_server:status(Name) of
        {ok, #{<<"slots">> := [#{<<"task">> := T}]}} when is_integer(T) -> running;
        {ok, _} ->
            case erlang:monotonic_time(millisecond) < Deadline of
                true -> wait_running(Name, Deadline);
                false -> error(not_running)
            end
    end.

%% which_children is answered after the supervisor has handled the child's exit (a
%% restart runs inside the supervisor), so this loop ends once it has seen it.
restarted(Sup, Old) ->
    case [P || {?ONE, P, worker, _} <- supervisor:which_children(Sup)] of
        [P] when is_pid(P), P =/= Old -> P;
        _ -> restarted(Sup, Old)
    end.
