defmodule LlamaNif.Events do
  @moduledoc """
  Per-task events (`:llama_nif_events`), named in the `:telemetry` convention, with a plain
  subscription API: this package does not depend on `:telemetry`, but when that module is
  loaded every event goes to `:telemetry.execute/3` as well.

      :ok =
        LlamaNif.Events.attach("log-tasks", LlamaNif.Events.task_stop(), fn _event, measurements, meta, _config ->
          IO.inspect({meta.task_id, meta.type, meta.outcome, measurements[:generated_tokens]})
        end, nil)

  A task ends with one event `[:llama_nif, :task, :stop]`, emitted in the process that takes
  the task's end from its mailbox: the blocking calls of `LlamaNif.Server` (`chat/3`, ...,
  `run/4`, also on their timeout), `LlamaNif.Server.await/2`, `LlamaNif.get_result/3`,
  `LlamaNif.next_chunk/2`, `LlamaNif.collect_stream/2` and the streams of `LlamaNif.stream/5`
  and `LlamaNif.Server.stream/4` (halting one early cancels the task: outcome `:cancelled`).
  A task's end is taken once, so a task gives at most one event; none when its end is taken
  by a `receive` of one's own, or never.

  Measurements (times in native units; `System.convert_time_unit/3`), each only when known:

    * `duration`: from the call that created the task to the receipt of its end. Always
      for the blocking calls of `LlamaNif.Server`; for the others when the task was created
      by the process that receives it (no `reply_to:` elsewhere) while a handler was
      attached (the start is kept in that process's dictionary until the end is received;
      at most 1000 per process);
    * `prompt_time`, `generation_time`: the core's timings of a chat or completion result;
    * `queue_time`: `duration` less those two, when all three are known;
    * `prompt_tokens`, `cached_tokens`, `generated_tokens`: from a chat or completion
      result's timings (`prompt_tokens` also from an embedding or rerank result's usage).

  An error (`:cancelled`, `:timeout`, ...) carries `duration` at most, and a result in
  `format: :json` no token counts or timings.

  Metadata: `task_id`, `type` (`:chat`, `:completion`, ...; `:undefined` when the receiving
  process did not create the task), `outcome` (`:ok` or the error code), `error` (the reason)
  when it failed, `session` (when known: a `LlamaNif.Server` session, a session id, or
  `:none`) and `server` (for tasks of `LlamaNif.Server`).

  Handlers run in the emitting process; one that raises is detached (a warning is logged).
  """

  @typedoc "An event name: a list of atoms, such as `[:llama_nif, :task, :stop]`."
  @type event_name :: :llama_nif_events.event_name()
  @typedoc "A handler: called as `fun.(event_name, measurements, metadata, config)`."
  @type handler :: (event_name(), map(), map(), term() -> term())

  @doc "The name of the event that ends every task: `[:llama_nif, :task, :stop]`."
  @spec task_stop() :: event_name()
  def task_stop, do: [:llama_nif, :task, :stop]

  @doc """
  Calls `fun` for every event named `event_name` from now on, with `config` as its last
  argument. `id` names the handler (for `detach/1`); `{:error, :already_exists}` when a
  handler of that id is attached.
  """
  @spec attach(term(), event_name(), handler(), term()) :: :ok | {:error, :already_exists}
  def attach(id, event_name, fun, config), do: :llama_nif_events.attach(id, event_name, fun, config)

  @doc "Removes the handler `id`; `{:error, :not_found}` when there is none."
  @spec detach(term()) :: :ok | {:error, :not_found}
  def detach(id), do: :llama_nif_events.detach(id)

  @doc "The attached handlers, as `{id, event_name}`."
  @spec list_handlers() :: [{term(), event_name()}]
  def list_handlers, do: :llama_nif_events.list_handlers()

  @doc "Emits an event to the handlers attached to its name (and to `:telemetry` when loaded)."
  @spec execute(event_name(), map(), map()) :: :ok
  def execute(event_name, measurements, metadata),
    do: :llama_nif_events.execute(event_name, measurements, metadata)
end
