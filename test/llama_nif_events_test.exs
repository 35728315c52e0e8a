defmodule LlamaNifEventsTest do
  # LlamaNif.Events on the real model: a handler attached from Elixir gets the
  # [:llama_nif, :task, :stop] event of a low-level task, of a LlamaNif.Server call, and of a
  # stream halted early (cancelled).
  use ExUnit.Case, async: false
  import LlamaNif.TestHelper

  @stop [:llama_nif, :task, :stop]

  setup_all do
    server = server(%{n_ctx: 1024})
    on_exit(fn -> LlamaNif.destroy_server(server) end)
    %{server: server}
  end

  setup do
    parent = self()
    id = {__MODULE__, make_ref()}
    handler = fn event, measurements, metadata, tag -> send(parent, {tag, event, measurements, metadata}) end
    assert :ok = LlamaNif.Events.attach(id, LlamaNif.Events.task_stop(), handler, :stop_event)
    on_exit(fn -> LlamaNif.Events.detach(id) end)
    %{handler: id}
  end

  defp gen(prompt, n), do: %{prompt: prompt, n_predict: n, ignore_eos: true, temperature: 0}

  test "attach, list_handlers, detach", %{handler: id} do
    assert {id, @stop} in LlamaNif.Events.list_handlers()
    assert {:error, :already_exists} = LlamaNif.Events.attach(id, @stop, fn _, _, _, _ -> :ok end, nil)
    assert :ok = LlamaNif.Events.detach(id)
    refute {id, @stop} in LlamaNif.Events.list_handlers()
    assert {:error, :not_found} = LlamaNif.Events.detach(id)
    # execute/3 reaches the handlers of its name only
    other = {__MODULE__, :other}
    :ok = LlamaNif.Events.attach(other, [:my_app, :thing], fn e, m, meta, p -> send(p, {e, m, meta}) end, self())
    assert :ok = LlamaNif.Events.execute([:my_app, :thing], %{n: 1}, %{why: :test})
    assert_received {[:my_app, :thing], %{n: 1}, %{why: :test}}
    :ok = LlamaNif.Events.detach(other)
  end

  test "a low-level task: create_task + get_result", %{server: server} do
    {:ok, task} = LlamaNif.create_task(server, 0, :completion, gen("1, 2, 3,", 4))
    {:ok, %{"tokens_predicted" => 4}} = LlamaNif.get_result(server, task, 60_000)
    # the handler ran in this process before get_result returned
    assert_received {:stop_event, @stop, measurements, %{task_id: ^task} = meta}
    assert %{type: :completion, outcome: :ok, session: :none} = meta
    assert %{generated_tokens: 4, prompt_tokens: p, duration: d, prompt_time: pt, generation_time: gt} = measurements
    assert p > 0 and d >= pt + gt
  end

  test "a LlamaNif.Server call, and a server stream halted early" do
    start_supervised!(
      {LlamaNif.Server,
       name: LlamaTest.Events, model: :llama_nif_debug.default_model_path(), config: %{n_parallel: 2, n_ctx: 1024, log_level: "error"}}
    )

    {:ok, _} = LlamaNif.Server.complete(LlamaTest.Events, gen("A, B,", 3))
    assert_received {:stop_event, @stop, %{generated_tokens: 3, duration: _, queue_time: _},
                     %{server: LlamaTest.Events, type: :completion, outcome: :ok, task_id: task}}
    refute_received {:stop_event, @stop, _, %{task_id: ^task}}

    # halting after two chunks cancels the task; its end is taken, with its event
    {:ok, stream} = LlamaNif.Server.stream(LlamaTest.Events, :completion, gen("Once upon a time", 900))
    assert [{:chunk, _}, {:chunk, _}] = Enum.take(stream, 2)
    assert_received {:stop_event, @stop, measurements,
                     %{server: LlamaTest.Events, type: :completion, outcome: :cancelled, error: {:cancelled, _}} = meta}
    assert Map.keys(measurements) == [:duration]
    task = meta.task_id
    refute_received {:stop_event, @stop, _, %{task_id: ^task}}
  end
end
