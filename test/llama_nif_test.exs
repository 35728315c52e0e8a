defmodule LlamaNifTest do
  use ExUnit.Case, async: false
  import LlamaNif.TestHelper

  setup_all do
    server = server()
    on_exit(fn -> LlamaNif.destroy_server(server) end)
    %{server: server}
  end

  test "the basic usage pattern, from Elixir", %{server: server} do
    parent = self()
    {:ok, s1} = LlamaNif.create_session(server, %{cache_prompt: true, temperature: 0.7})
    {:ok, s2} = LlamaNif.create_session(server, %{cache_prompt: true, temperature: 0.7})

    for {sid, text} <- [{s1, "Name a color."}, {s2, "Name an animal."}] do
      spawn(fn ->
        {:ok, task} = LlamaNif.create_task(server, sid, "chat", chat(text))
        send(parent, {sid, LlamaNif.get_result(server, task, 30_000)})
      end)
    end

    for sid <- [s1, s2] do
      assert_receive {^sid, {:ok, result}}, 60_000
      assert %{"object" => "chat.completion"} = result
      assert LlamaNif.content(result) != ""
    end
  end

  test "maps with string keys, JSON strings, nil for null", %{server: server} do
    {:ok, t1} = LlamaNif.create_task(server, 0, :chat, %{"messages" => [%{"role" => "user", "content" => "Hi"}], "n_predict" => 4, "temperature" => 0})
    {:ok, t2} = LlamaNif.create_task(server, 0, "chat", ~s({"messages": [{"role": "user", "content": "Hi"}], "n_predict": 4, "temperature": 0}))
    {:ok, r1} = LlamaNif.get_result(server, t1)
    {:ok, r2} = LlamaNif.get_result(server, t2)
    assert LlamaNif.content(r1) == LlamaNif.content(r2)
    assert {:ok, %{"slots" => [%{"task" => nil} | _]}} = LlamaNif.status(server)
    assert {:ok, json} = LlamaNif.status(server, format: :json)
    assert is_binary(json) and String.starts_with?(json, "{")
  end

  test "a session remembers the conversation", %{server: server} do
    {:ok, sid} = LlamaNif.create_session(server, %{system_prompt: "You are terse."})
    {:ok, t1} = LlamaNif.create_task(server, sid, :chat, chat("My name is Zorblax. Say OK.", 4))
    {:ok, _} = LlamaNif.get_result(server, t1)
    {:ok, t2} = LlamaNif.create_task(server, sid, :chat, chat("What is my name?"))
    {:ok, r2} = LlamaNif.get_result(server, t2)
    assert r2["usage"]["prompt_tokens_details"]["cached_tokens"] > 0
    assert {:ok, %{"task_count" => 2, "message_count" => 4}} = LlamaNif.session_info(server, sid)
    assert :ok = LlamaNif.close_session(server, sid)
    assert {:error, {:session_not_found, _}} = LlamaNif.session_info(server, sid)
  end

  test "stream: chunks then the result; the text adds up", %{server: server} do
    {:ok, stream} = LlamaNif.stream(server, 0, :chat, chat("Count from 1 to 5.", 12))
    events = Enum.to_list(stream)
    {chunks, [{:done, result}]} = Enum.split(events, -1)
    assert length(chunks) >= 2
    assert Enum.map_join(chunks, fn {:chunk, c} -> LlamaNif.content(c) end) == LlamaNif.content(result)
  end

  test "halting a stream early cancels its task", %{server: server} do
    {:ok, stream} = LlamaNif.stream(server, 0, :completion, %{prompt: "Once upon a time", n_predict: 400})
    assert [{:chunk, _}, {:chunk, _}] = Enum.take(stream, 2)
    # the task is gone, and so are its messages: the halt took them up to the cancel's error
    assert {:ok, %{"tasks" => %{"running" => 0, "queued" => 0}}} = LlamaNif.status(server)
    {:messages, left} = Process.info(self(), :messages)
    assert [] == for({tag, _, _} = m <- left, tag in [:llama_chunk, :llama_done, :llama_error], do: m)
  end

  test "cancel_task ends a task with {:cancelled, _}", %{server: server} do
    {:ok, t} = LlamaNif.create_task(server, 0, :completion, %{prompt: "Once upon a time", n_predict: 400})
    assert :ok = LlamaNif.cancel_task(server, t)
    assert {:error, {:cancelled, _}} = LlamaNif.get_result(server, t)
  end

  test "bad input is {:error, {code, detail}}", %{server: server} do
    assert {:error, {:invalid_argument, "unknown key 'x' in server config"}} = LlamaNif.init_server(%{x: 1})
    assert {:error, {:invalid_argument, _}} = LlamaNif.create_task(server, 0, :poem, %{prompt: "x"})
    assert {:error, {:invalid_argument, _}} = LlamaNif.create_task(server, 0, :completion, %{prompt: <<255>>})
    assert {:error, {:invalid_argument, _}} = LlamaNif.create_task(server, 0, :completion, %{prompt: {:tuple}})
    assert {:error, {:invalid_argument, _}} = LlamaNif.create_task(server, 0, :completion, "{not json")
    assert {:error, {:invalid_argument, _}} = LlamaNif.create_task(server, 0, :completion, %{prompt: "x"}, format: :xml)
    assert {:error, {:session_not_found, _}} = LlamaNif.create_task(server, 12345, :chat, chat("x"))
    assert {:error, {:task_not_found, _}} = LlamaNif.cancel_task(server, 1_125_899_906_842_624)
    assert {:error, {:invalid_argument, _}} = LlamaNif.get_result(server, 1, :forever)
    assert {:error, {:invalid_argument, _}} = LlamaNif.create_session(make_ref(), %{})
    assert {:error, {:timeout, _}} = LlamaNif.get_result(server, elem(LlamaNif.create_task(server, 0, :completion, %{prompt: "a", n_predict: 64}), 1), 0)
  end
end
