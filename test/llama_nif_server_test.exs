defmodule LlamaNifServerTest do
  # LlamaNif.Server in ExUnit's test supervisor, on the real model: many callers by name,
  # each with a session; callers and the server killed; streams, reply_to, charlists.
  use ExUnit.Case, async: false
  # the supervisor's reports of the kills below
  @moduletag :capture_log

  @words ~w(apple banana cobalt dragon falcon garnet harbor igloo jasmine kettle lemon meadow nickel orchid pepper quartz)

  defp say(text, n), do: %{messages: [%{role: "user", content: text}], n_predict: n, temperature: 0}

  defp start(name, config) do
    model = :llama_nif_debug.default_model_path()
    start_supervised!({LlamaNif.Server, name: name, model: model, config: Map.put(config, :log_level, "error")})
  end

  test "16 processes call by name at once; each session keeps its own history" do
    start(LlamaTest.LLM, %{n_parallel: 4, n_ctx: 2048})

    answers =
      @words
      |> Enum.map(fn word ->
        Task.async(fn ->
          {:ok, session} = LlamaNif.Server.open_session(LlamaTest.LLM)
          opts = [session: session, timeout: 300_000]
          {:ok, _} = LlamaNif.Server.chat(LlamaTest.LLM, say("Remember the word #{word}. Reply OK.", 4), opts)
          question = say("What word did I ask you to remember? Answer with the word only.", 6)
          {:ok, r} = LlamaNif.Server.chat(LlamaTest.LLM, question, opts)
          {:ok, info} = LlamaNif.Server.session_info(LlamaTest.LLM, session)
          {word, LlamaNif.text(r), info}
        end)
      end)
      |> Task.await_many(600_000)

    for {word, answer, info} <- answers do
      assert {word, word} == {word, answer |> String.trim() |> String.trim(".") |> String.downcase()}
      assert %{"message_count" => 4, "task_count" => 2} = info
    end
  end

  test "streams: events, text without empty deltas; reply_to; halting cancels" do
    start(LlamaTest.Stream, %{n_parallel: 2, n_ctx: 1024})
    {:ok, stream} = LlamaNif.Server.stream(LlamaTest.Stream, :chat, say("Count from 1 to 5.", 12))
    events = Enum.to_list(stream)
    {chunks, [{:done, result}]} = Enum.split(events, -1)
    assert Enum.map_join(chunks, fn {:chunk, c} -> LlamaNif.chunk_text(c) end) == LlamaNif.text(result)
    # the first chat chunk carries only the role: the text stream skips it
    assert {:chunk, first} = hd(chunks)
    assert LlamaNif.chunk_text(first) == ""

    texts = LlamaNif.Server.text_stream(LlamaTest.Stream, :chat, say("Count from 1 to 5.", 12)) |> Enum.to_list()
    assert Enum.all?(texts, &(&1 != ""))
    assert Enum.join(texts) == LlamaNif.text(result)

    # a task whose messages go to another process, which awaits it
    parent = self()
    waiter = spawn(fn -> receive do: ({:task, t} -> send(parent, {:awaited, LlamaNif.Server.await(t, 120_000)})) end)
    {:ok, t} = LlamaNif.Server.async(LlamaTest.Stream, :completion, %{prompt: "1, 2, 3,", n_predict: 4}, reply_to: waiter)
    send(waiter, {:task, t})
    assert_receive {:awaited, {:ok, %{"content" => content}}}, 120_000
    assert is_binary(content)

    {:ok, long} = LlamaNif.Server.stream(LlamaTest.Stream, :completion, %{prompt: "Once upon a time", n_predict: 400})
    assert [{:chunk, _}, {:chunk, _}] = Enum.take(long, 2)
    assert {:ok, %{"tasks" => %{"running" => 0, "queued" => 0}}} = LlamaNif.Server.status(LlamaTest.Stream)
    {:messages, left} = Process.info(self(), :messages)
    assert [] == for({tag, _, _} = m <- left, tag in [:llama_chunk, :llama_done, :llama_error], do: m)
  end

  test "a caller killed mid-task: its task is cancelled and the server serves on" do
    start(LlamaTest.One, %{n_parallel: 1, n_ctx: 1024})
    {:ok, %{"totals" => %{"tasks_completed" => done}}} = LlamaNif.Server.status(LlamaTest.One)
    parent = self()

    {caller, ref} =
      spawn_monitor(fn ->
        {:ok, stream} =
          LlamaNif.Server.stream(LlamaTest.One, :completion, %{prompt: "Once upon a time", n_predict: 900, ignore_eos: true})

        Enum.each(stream, fn _ -> send(parent, {:generating, self()}) end)
      end)

    assert_receive {:generating, ^caller}, 120_000
    assert {:ok, %{"slots" => [%{"task" => task}]}} = LlamaNif.Server.status(LlamaTest.One)
    assert is_integer(task)
    Process.exit(caller, :kill)
    assert_receive {:DOWN, ^ref, :process, ^caller, :killed}, 30_000
    # one slot: this call can only finish once the killed caller's task is gone
    assert {:ok, r} = LlamaNif.Server.chat(LlamaTest.One, say("Say hello.", 4), timeout: 120_000)
    assert LlamaNif.text(r) != ""
    completed = done + 1

    assert {:ok, %{"slots" => [%{"task" => nil}], "tasks" => %{"running" => 0, "queued" => 0},
                   "totals" => %{"tasks_completed" => ^completed}}} = LlamaNif.Server.status(LlamaTest.One)
  end

  test "the server killed: the supervisor restarts it and it serves again" do
    start(LlamaTest.Restart, %{n_parallel: 1, n_ctx: 512})
    servers = :llama_nif_debug.info().servers
    {:ok, old_session} = LlamaNif.Server.open_session(LlamaTest.Restart, %{}, owner: :server)
    old = Process.whereis(LlamaTest.Restart)
    ref = Process.monitor(old)
    Process.exit(old, :kill)
    assert_receive {:DOWN, ^ref, :process, ^old, :killed}, 30_000
    # the test supervisor restarts it; calls wait until it is back (a call is answered after init)
    new = wait_restarted(LlamaTest.Restart, old)
    assert new != old
    assert :llama_nif_debug.wait_servers(servers, 30_000)
    assert {:ok, r} = LlamaNif.Server.chat(LlamaTest.Restart, "Say hello.", timeout: 120_000)
    assert LlamaNif.text(r) != ""
    assert {:error, {:session_not_found, _}} = LlamaNif.Server.chat(LlamaTest.Restart, "Hi", session: old_session)
  end

  test "charlists and iodata are text; token ids only as {:tokens, ids}; errors name the key" do
    start(LlamaTest.Text, %{n_parallel: 1, n_ctx: 512})
    opts = %{n_predict: 4, temperature: 0}
    {:ok, bin} = LlamaNif.Server.complete(LlamaTest.Text, Map.put(opts, :prompt, "Once upon a"))
    {:ok, chars} = LlamaNif.Server.complete(LlamaTest.Text, Map.put(opts, :prompt, ~c"Once upon a"))
    {:ok, io} = LlamaNif.Server.complete(LlamaTest.Text, Map.put(opts, :prompt, ["Once", ?\s, ~c"upon a"]))
    {:ok, %{"tokens" => ids}} = LlamaNif.Server.tokenize(LlamaTest.Text, ~c"Once upon a")
    {:ok, by_ids} = LlamaNif.Server.complete(LlamaTest.Text, Map.put(opts, :prompt, {:tokens, ids}))

    for r <- [chars, io, by_ids] do
      assert Map.take(r, ["content", "tokens_evaluated"]) == Map.take(bin, ["content", "tokens_evaluated"])
    end

    assert bin["tokens_evaluated"] == length(ids)
    {:ok, chat} = LlamaNif.Server.chat(LlamaTest.Text, %{messages: [%{role: ~c"user", content: ~c"Say hi."}], n_predict: 4})
    assert LlamaNif.text(chat) != ""

    assert {:error, {:invalid_argument, "task input: messages[0].content must be text" <> _}} =
             LlamaNif.Server.chat(LlamaTest.Text, [%{role: "user", content: [-1]}])

    assert {:error, {:invalid_argument, "task input: stop[0] must be text" <> _}} =
             LlamaNif.Server.complete(LlamaTest.Text, %{prompt: "x", stop: [[-1]]})
  end

  defp wait_restarted(name, old) do
    case Process.whereis(name) do
      pid when is_pid(pid) and pid != old ->
        # the name is registered before init: a call returns once the model is loaded
        {:ok, _} = LlamaNif.Server.status(name)
        pid

      _ ->
        wait_restarted(name, old)
    end
  end
end
