%% A port program that exposes llama_nif to another language over stdin/stdout, for running
%% the Python conformance cases against the NIF (Python side: erlang-py, module `erlang`).
%%
%%   erl -noinput -pa <ebin dirs> -s llama_nif_port main     (-noinput: stdin is ours)
%%
%% Frames: a 4-byte big-endian length, then a term in the external term format.
%%   request  {Id, Caller, Function, Args}     Function: an atom of the whitelist below
%%   reply    {Id, Result}                     Result: what llama_nif:Function(Args...) returned
%% Servers cross the port as integers: {ok, Handle} from init_server, Handle in later calls.
%% Calls with the same Caller (any term, e.g. a Python thread id) run in one Erlang process,
%% in order, so that a task's messages reach the caller that created it; different Callers
%% run concurrently. {Id, Caller, exit, []} ends that caller's process (its tasks are
%% cancelled). EOF on stdin ends the program.
-module(llama_nif_port).
-export([main/0]).

-define(CALLS, [init_server, load_model, destroy_server, create_session, close_session,
                create_task, stream_task, get_result, cancel_task, status, session_info,
                collect_stream, next_chunk]).

main() ->
    Port = open_port({fd, 0, 1}, [{packet, 4}, binary, eof]),
    loop(Port, #{}, #{}, 1).

%% This process owns the handle table; workers get a snapshot with each call.
loop(Port, Callers, Servers, Next) ->
    receive
        {Port, {data, Bin}} ->
            {Id, Caller, Fun, Args} = binary_to_term(Bin),
            {Pid, Callers1} = caller(Caller, Callers),
            Pid ! {call, self(), Id, Fun, Args, Servers},
            loop(Port, Callers1, Servers, Next);
        {reply, Id, {new_server, S}} ->
            port_command(Port, term_to_binary({Id, {ok, Next}})),
            loop(Port, Callers, Servers#{Next => S}, Next + 1);
        {reply, Id, Result} ->
            port_command(Port, term_to_binary({Id, Result})),
            loop(Port, Callers, Servers, Next);
        {Port, eof} ->
            halt(0)
    end.

caller(Caller, Callers) ->
    case Callers of
        #{Caller := Pid} -> {Pid, Callers};
        _ -> Pid = spawn(fun worker/0), {Pid, Callers#{Caller => Pid}}
    end.

worker() ->
    receive
        {call, From, Id, exit, [], _} ->
            From ! {reply, Id, ok};
        {call, From, Id, Fun, Args, Servers} ->
            From ! {reply, Id, call(Fun, Args, Servers)},
            worker()
    end.

%% Handles in, servers out; anything unexpected is an error term, never a crash.
call(Fun, Args, Servers) when is_list(Args) ->
    case lists:member(Fun, ?CALLS) of
        false ->
            {error, {invalid_argument, <<"not a llama_nif call">>}};
        true ->
            Real = case Args of
                       [H | Rest] when is_integer(H), is_map_key(H, Servers), Fun =/= next_chunk,
                                       Fun =/= collect_stream -> [maps:get(H, Servers) | Rest];
                       _ -> Args
                   end,
            try apply(llama_nif, Fun, Real) of
                {ok, S} when Fun =:= init_server -> {new_server, S};
                R -> R
            catch
                C:E -> {error, {unknown, iolist_to_binary(io_lib:format("~p:~0p", [C, E]))}}
            end
    end;
call(_, _, _) ->
    {error, {invalid_argument, <<"Args must be a list">>}}.
