defmodule LlamaNif do
  @moduledoc """
  Elixir face of `:llama_nif`: llama.cpp's server core (slots, continuous batching, prompt
  cache, chat templates) running inside the VM.

      {:ok, server} = LlamaNif.init_server(%{n_parallel: 4, n_ctx: 2048, model: path})
      {:ok, session} = LlamaNif.create_session(server, %{system_prompt: "Be brief."})
      {:ok, task} = LlamaNif.create_task(server, session, :chat,
                                         %{messages: [%{role: "user", content: "Hi"}]})
      {:ok, result} = LlamaNif.get_result(server, task, 30_000)
      LlamaNif.text(result)

  This is the low-level API: the caller holds the server handle. For a supervised server
  called by name from any process, see `LlamaNif.Server`.

  Configs and inputs are maps (atom or string keys), or JSON strings. Text in an input map
  (`prompt`, `content`, `system_prompt`, `stop`, `query`, `documents`, ...) may be a string,
  a charlist or iodata; a prompt of token ids is `{:tokens, ids}`. Results are maps with
  string keys; JSON null is `nil` here; `text/1` and `chunk_text/1` give their text. Errors
  are `{:error, {code, detail}}` with `code` an atom named after the C error code
  (`:invalid_argument`, `:timeout`, `:cancelled`, ...).

  A task's events go to the process that created it, or to `reply_to:`
  (`{:llama_chunk, id, chunk}`, `{:llama_done, id, result}`, `{:llama_error, id, reason}`);
  the tasks of a process that exits are cancelled. Sessions created with
  `close_on_exit: true` are closed when their owner exits. A server is freed by
  `destroy_server/1` or when garbage-collected.

  A task whose end `get_result/3`, `next_chunk/2`, `collect_stream/2` or a stream of
  `stream/5` takes ends with the event `[:llama_nif, :task, :stop]` (outcome, tokens, the
  core's timings, and the duration when this process created the task): see
  `LlamaNif.Events`.
  """

  @typedoc "A server handle (opaque); freed by `destroy_server/1` or when garbage-collected."
  @type server :: :llama_nif.server()
  @typedoc "A session id; 0 means no session (a stateless task)."
  @type session_id :: :llama_nif.session_id()
  @typedoc "A task id, unique in the VM."
  @type task_id :: :llama_nif.task_id()
  @typedoc "A task type: `:completion`, `:chat`, `:embedding`, `:rerank`, `:tokenize`, `:detokenize` (or as a string)."
  @type task_type :: :llama_nif.task_type()
  @typedoc "The atom of an error: one per C error code (`:invalid_argument`, `:timeout`, `:cancelled`, ...)."
  @type error_code :: :llama_nif.error_code()
  @typedoc "An error: its code and a message."
  @type reason :: {error_code(), String.t()}
  @typedoc "A stream element of `stream/5`."
  @type event :: {:chunk, map()} | {:done, map()} | {:error, reason()}

  @doc "Creates a server; `model:` (a path) loads a model at once."
  @spec init_server(map() | binary()) :: {:ok, server()} | {:error, reason()}
  def init_server(config \\ %{}), do: :llama_nif.init_server(config)

  @doc "Loads a GGUF model into a server made without `model:` (one model per server)."
  @spec load_model(server(), Path.t(), map() | binary()) :: :ok | {:error, reason()}
  def load_model(server, path, config \\ %{}), do: :llama_nif.load_model(server, path, config)

  @doc "Stops and frees the server now; its tasks in flight end as cancelled."
  @spec destroy_server(server()) :: :ok | {:error, reason()}
  def destroy_server(server), do: :llama_nif.destroy_server(server)

  @doc "Options: `close_on_exit: true` closes the session when `owner:` (default self()) exits."
  @spec create_session(server(), map() | binary(), keyword()) :: {:ok, session_id()} | {:error, reason()}
  def create_session(server, config \\ %{}, opts \\ []), do: :llama_nif.create_session(server, config, opts)

  @doc "Closes a session; its tasks in flight end as cancelled."
  @spec close_session(server(), session_id()) :: :ok | {:error, reason()}
  def close_session(server, session), do: :llama_nif.close_session(server, session)

  @doc """
  Queues a task (`:chat`, `:completion`, ...) in a session (0: none); its messages go to the
  caller. Options: `stream: true`, `format: :json` (raw JSON binaries instead of maps),
  `reply_to: pid` (a local process that gets the task's messages and owns the task instead
  of the caller).

  Text may be a string, a charlist or iodata wherever the input is text (`prompt`, message
  `content`, `system_prompt`, `stop`, `query`, `documents`, ...); a prompt of token ids is
  `{:tokens, ids}`. A list that is not text is `{:error, {:invalid_argument, detail}}`
  naming the key.
  """
  @spec create_task(server(), session_id(), task_type(), map() | binary(), keyword()) ::
          {:ok, task_id()} | {:error, reason()}
  def create_task(server, session, type, input, opts \\ []),
    do: :llama_nif.create_task(server, session, type, input, with_nil(opts))

  @doc """
  Waits for the result of a task created by this process (timeout in ms or `:infinity`;
  0 only looks). On `{:error, {:timeout, _}}` the task goes on. For a streaming task the
  chunks stay in the mailbox: use `stream/5` instead.
  """
  @spec get_result(server(), task_id(), timeout()) :: {:ok, map() | binary()} | {:error, reason()}
  def get_result(server, task, timeout \\ 30_000), do: :llama_nif.get_result(server, task, timeout)

  @doc "Stops a task; its receiver gets `{:llama_error, id, {:cancelled, _}}`."
  @spec cancel_task(server(), task_id()) :: :ok | {:error, reason()}
  def cancel_task(server, task), do: :llama_nif.cancel_task(server, task)

  @doc """
  Starts a streaming task and returns a lazy stream of `{:chunk, chunk}` elements ending
  with `{:done, result}` or `{:error, reason}`. Consume it in the calling process; halting
  early (e.g. `Enum.take/2`) cancels the task and takes its remaining messages out of the
  mailbox. `timeout:` (ms, default 30_000) per message.
  """
  @spec stream(server(), session_id(), task_type(), map() | binary(), keyword()) ::
          {:ok, Enumerable.t()} | {:error, reason()}
  def stream(server, session, type, input, opts \\ []) do
    {timeout, opts} = Keyword.pop(opts, :timeout, 30_000)

    with {:ok, task} <- :llama_nif.stream_task(server, session, type, input, with_nil(opts)) do
      {:ok, task_stream(task, timeout, fn -> :llama_nif.cancel_task(server, task) end)}
    end
  end

  @doc """
  The generated text of a streaming chat or completion as a lazy stream of non-empty
  strings (empty deltas, such as a chat's first role-only chunk, are skipped). Options as
  `stream/5`. An error raises `LlamaNif.Error` while enumerating; halting early cancels.
  """
  @spec text_stream(server(), session_id(), task_type(), map() | binary(), keyword()) :: Enumerable.t()
  def text_stream(server, session, type, input, opts \\ []) do
    case stream(server, session, type, input, opts) do
      {:ok, stream} -> texts(stream)
      {:error, reason} -> raise LlamaNif.Error, reason: reason
    end
  end

  @doc """
  The texts of a stream of `t:event/0` (from `stream/5` or `LlamaNif.Server.stream/4`):
  non-empty chunk texts; `{:error, reason}` raises `LlamaNif.Error`.
  """
  @spec texts(Enumerable.t()) :: Enumerable.t()
  def texts(events) do
    Stream.flat_map(events, fn
      {:chunk, chunk} ->
        case chunk_text(chunk) do
          "" -> []
          text -> [text]
        end

      {:done, _} ->
        []

      {:error, reason} ->
        raise LlamaNif.Error, reason: reason
    end)
  end

  @doc """
  Starts a streaming task (`create_task/5` with `stream: true`) and returns its id; read its
  messages with `next_chunk/2` or `collect_stream/2`, or use `stream/5`.
  """
  @spec stream_task(server(), session_id(), task_type(), map() | binary(), keyword()) ::
          {:ok, task_id()} | {:error, reason()}
  def stream_task(server, session, type, input, opts \\ []),
    do: :llama_nif.stream_task(server, session, type, input, with_nil(opts))

  @doc """
  The next message of a streaming task, from the mailbox: `{:chunk, chunk}`,
  `{:done, result}` or `{:error, reason}` (`{:error, {:timeout, _}}` when nothing came).
  """
  @spec next_chunk(task_id(), timeout()) :: event()
  def next_chunk(task, timeout \\ 30_000), do: :llama_nif.next_chunk(task, timeout)

  @doc """
  All chunks and the result of a streaming task: `{:ok, chunks, result}`, or
  `{:error, reason, chunks_so_far}` (timeout per message).
  """
  @spec collect_stream(task_id(), timeout()) :: {:ok, [map()], map()} | {:error, reason(), [map()]}
  def collect_stream(task, timeout \\ 30_000), do: :llama_nif.collect_stream(task, timeout)

  # The events of a streaming task in this process's mailbox, as a Stream; `cancel` runs
  # when the consumer halts before the end.
  @doc false
  def task_stream(task, timeout, cancel) do
    Stream.resource(
      fn -> :open end,
      fn
        :closed ->
          {:halt, :closed}

        :open ->
          case :llama_nif.next_chunk(task, timeout) do
            {:chunk, c} -> {[{:chunk, c}], :open}
            {:done, r} -> {[{:done, r}], :closed}
            {:error, reason} -> {[{:error, reason}], :closed}
          end
      end,
      fn
        :open ->
          cancel.()
          drain(task, timeout)

        :closed ->
          :ok
      end
    )
  end

  # After a cancel the task's end message is on its way (a cancel sends it at once; a task
  # that had just finished sends its own): drop what is left up to it. Taken through
  # next_chunk/2, so the end emits the task's [:llama_nif, :task, :stop] event.
  defp drain(task, timeout) do
    case :llama_nif.next_chunk(task, timeout) do
      {:chunk, _} -> drain(task, timeout)
      {:done, _} -> :ok
      {:error, _} -> :ok
    end
  end

  @doc "Slots, queue, totals and model. Options: `format: :json`."
  @spec status(server(), keyword()) :: {:ok, map() | binary()} | {:error, reason()}
  def status(server, opts \\ []), do: :llama_nif.status(server, with_nil(opts))

  @doc "A session's message and task counts, slot and config. Options: `format: :json`."
  @spec session_info(server(), session_id(), keyword()) :: {:ok, map() | binary()} | {:error, reason()}
  def session_info(server, session, opts \\ []), do: :llama_nif.session_info(server, session, with_nil(opts))

  @doc """
  The generated text of a chat or completion result: the first choice's message content,
  or a completion's content; `""` when it is null. A stream chunk gives its text as
  `chunk_text/1`.
  """
  @spec text(map()) :: String.t()
  def text(%{"choices" => [%{"message" => %{"content" => c}} | _]}), do: if(is_binary(c), do: c, else: "")
  def text(%{"choices" => [%{"delta" => _} | _]} = chunk), do: chunk_text(chunk)
  def text(%{"content" => c}) when is_binary(c), do: c

  @doc """
  The text a stream chunk adds (a chat delta's content, a completion chunk's content); `""`
  for chunks without text, such as a chat's first (role only) and last (finish reason) chunk.
  """
  @spec chunk_text(map()) :: String.t()
  def chunk_text(%{"choices" => [%{"delta" => %{"content" => c}} | _]}) when is_binary(c), do: c
  def chunk_text(%{"choices" => _}), do: ""
  def chunk_text(%{"content" => c}) when is_binary(c), do: c

  @doc "The text of a result or of a chunk (`text/1` and `chunk_text/1` in one); `\"\"` if none."
  @spec content(map()) :: String.t()
  def content(%{"choices" => [%{"message" => %{"content" => c}} | _]}) when is_binary(c), do: c
  def content(%{"choices" => [%{"delta" => %{"content" => c}} | _]}) when is_binary(c), do: c
  def content(%{"content" => c}) when is_binary(c), do: c
  def content(_), do: ""

  defp with_nil(opts) when is_map(opts), do: Map.put_new(opts, :null, nil)
  defp with_nil(opts) when is_list(opts), do: Keyword.put_new(opts, :null, nil)
  defp with_nil(opts), do: opts
end

defmodule LlamaNif.Error do
  @moduledoc "Raised by the text streams (`LlamaNif.text_stream/5`, `LlamaNif.Server.text_stream/4`) on a task's error."
  defexception [:reason]

  @impl true
  def message(%{reason: {code, detail}}), do: "#{code}: #{detail}"
  def message(%{reason: reason}), do: inspect(reason)
end
