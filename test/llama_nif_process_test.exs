defmodule LlamaNifProcessTest do
  # Processes that exit, sessions that die with their owner, servers freed by the GC.
  use ExUnit.Case, async: false
  import LlamaNif.TestHelper

  test "a process killed mid-generation: its task is cancelled, the queued one runs" do
    server = server(%{n_parallel: 1, n_ctx: 1024})
    parent = self()
    {:ok, s1} = LlamaNif.create_session(server)
    {:ok, s2} = LlamaNif.create_session(server)

    {a, ref} =
      spawn_monitor(fn ->
        {:ok, stream} = LlamaNif.stream(server, s1, :completion, %{prompt: "Once upon a time", n_predict: 900, ignore_eos: true})
        Enum.each(stream, fn _ -> send(parent, :generating) end)
      end)

    assert_receive :generating, 30_000
    spawn(fn ->
      {:ok, t} = LlamaNif.create_task(server, s2, :chat, chat("Say hello."))
      send(parent, :queued)
      send(parent, {:b, LlamaNif.get_result(server, t, 120_000)})
    end)
    assert_receive :queued, 30_000
    Process.exit(a, :kill)
    assert_receive {:DOWN, ^ref, :process, ^a, :killed}, 30_000
    assert_receive {:b, {:ok, result}}, 120_000
    assert LlamaNif.content(result) != ""
    assert {:ok, %{"totals" => %{"tasks_completed" => 1}, "tasks" => %{"running" => 0, "queued" => 0}}} =
             LlamaNif.status(server)
    :ok = LlamaNif.destroy_server(server)
  end

  test "close_on_exit: the session closes when its owner exits; by default it stays" do
    server = server(%{n_parallel: 1})
    owner = spawn(fn -> receive do: (:exit -> :ok) end)
    ref = Process.monitor(owner)
    {:ok, owned} = LlamaNif.create_session(server, %{}, close_on_exit: true, owner: owner)
    {:ok, kept} = LlamaNif.create_session(server, %{}, owner: owner)
    {:ok, t} = LlamaNif.create_task(server, owned, :completion, %{prompt: "Once upon a time", n_predict: 900, ignore_eos: true})
    send(owner, :exit)
    assert_receive {:DOWN, ^ref, :process, ^owner, :normal}, 30_000
    # closing the session cancels the task in it: that message is the sign
    reason = "session #{owned} was closed"
    assert {:error, {:cancelled, ^reason}} = LlamaNif.get_result(server, t, 60_000)
    assert {:error, {:session_not_found, _}} = LlamaNif.session_info(server, owned)
    assert {:ok, _} = LlamaNif.session_info(server, kept)
    :ok = LlamaNif.destroy_server(server)
  end

  test "a server whose owner is killed is freed by the garbage collector" do
    before = live_servers()
    parent = self()

    {owner, ref} =
      spawn_monitor(fn ->
        server = server(%{n_parallel: 1})
        {:ok, _t} = LlamaNif.create_task(server, 0, :completion, %{prompt: "Once upon a time", n_predict: 400})
        send(parent, :ready)
        receive do: (:never -> server)
      end)

    assert_receive :ready, 60_000
    assert live_servers() == before + 1
    Process.exit(owner, :kill)
    assert_receive {:DOWN, ^ref, :process, ^owner, :killed}, 30_000
    :erlang.garbage_collect()
    assert :llama_nif_debug.wait_servers(before, 30_000)
    assert live_servers() == before
  end
end
