defmodule LlamaNif do
  @moduledoc """
  Elixir face of `:llama_nif`: llama.cpp's server core (slots, continuous batching, prompt
  cache, chat templates) running inside the VM.

      {:ok, server} = LlamaNif.init_server(%{n_parallel: 4, n_ctx: 2048, model: path})
      {:ok, session} = LlamaNif.create_session(server, %{system_prompt: "Be brief."})
      {:ok, task} = LlamaNif.create_task(server, session, :chat,
                                         %{messages: [%{role: "user", content: "Hi"}]})
      {:ok, result} = LlamaNif.get_result(server, task, 30_000)
      LlamaNif.content(result)

  Configs and inputs are maps (atom or string keys), or JSON strings. Results are maps with
  string keys; JSON null is `nil` here. Errors are `{:error, {code, detail}}` with `code` an
  atom named after the C error code (`:invalid_argument`, `:timeout`, `:cancelled`, ...).

  A task's events go to the process that created it (`{:llama_chunk, id, chunk}`,
  `{:llama_done, id, result}`, `{:llama_error, id, reason}`); the tasks of a process that
  exits are cancelled. Sessions created with `close_on_exit: true` are closed when their
  owner exits. A server is freed by `destroy_server/1` or when garbage-collected.
  """

  @type server :: :llama_nif.server()
  @type reason :: {atom(), binary()}

  @doc "Creates a server; `model:` (a path) loads a model at once."
  @spec init_server(map() | binary()) :: {:ok, server()} | {:error, reason()}
  def init_server(config \\ %{}), do: :llama_nif.init_server(config)

  @spec load_model(server(), Path.t(), map() | binary()) :: :ok | {:error, reason()}
  def load_model(server, path, config \\ %{}), do: :llama_nif.load_model(server, path, config)

  @spec destroy_server(server()) :: :ok | {:error, reason()}
  def destroy_server(server), do: :llama_nif.destroy_server(server)

  @doc "Options: `close_on_exit: true` closes the session when `owner:` (default self()) exits."
  @spec create_session(server(), map() | binary(), keyword()) :: {:ok, non_neg_integer()} | {:error, reason()}
  def create_session(server, config \\ %{}, opts \\ []), do: :llama_nif.create_session(server, config, opts)

  @spec close_session(server(), non_neg_integer()) :: :ok | {:error, reason()}
  def close_session(server, session), do: :llama_nif.close_session(server, session)

  @doc """
  Queues a task (`:chat`, `:completion`, ...) in a session (0: none).
  Options: `stream: true`, `format: :json` (raw JSON binaries instead of maps).
  """
  @spec create_task(server(), non_neg_integer(), atom() | String.t(), map() | binary(), keyword()) ::
          {:ok, pos_integer()} | {:error, reason()}
  def create_task(server, session, type, input, opts \\ []),
    do: :llama_nif.create_task(server, session, type, input, with_nil(opts))

  @doc """
  Waits for the result of a task created by this process (timeout in ms or `:infinity`;
  0 only looks). On `{:error, {:timeout, _}}` the task goes on. For a streaming task the
  chunks stay in the mailbox: use `stream/5` instead.
  """
  @spec get_result(server(), pos_integer(), timeout()) :: {:ok, term()} | {:error, reason()}
  def get_result(server, task, timeout \\ 30_000), do: :llama_nif.get_result(server, task, timeout)

  @spec cancel_task(server(), pos_integer()) :: :ok | {:error, reason()}
  def cancel_task(server, task), do: :llama_nif.cancel_task(server, task)

  @doc """
  Starts a streaming task and returns a lazy stream of `{:chunk, chunk}` elements ending
  with `{:done, result}` or `{:error, reason}`. Consume it in the calling process; halting
  early (e.g. `Enum.take/2`) cancels the task and takes its remaining messages out of the
  mailbox. `timeout:` (ms, default 30_000) per message.
  """
  @spec stream(server(), non_neg_integer(), atom() | String.t(), map() | binary(), keyword()) ::
          {:ok, Enumerable.t()} | {:error, reason()}
  def stream(server, session, type, input, opts \\ []) do
    {timeout, opts} = Keyword.pop(opts, :timeout, 30_000)

    with {:ok, task} <- :llama_nif.stream_task(server, session, type, input, with_nil(opts)) do
      {:ok,
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
             :llama_nif.cancel_task(server, task)
             drain(task, timeout)

           :closed ->
             :ok
         end
       )}
    end
  end

  # After a cancel the task's end message is on its way (a cancel sends it at once; a task
  # that had just finished sends its own): drop what is left up to it.
  defp drain(task, timeout) do
    receive do
      {:llama_chunk, ^task, _} -> drain(task, timeout)
      {:llama_done, ^task, _} -> :ok
      {:llama_error, ^task, _} -> :ok
    after
      timeout -> :ok
    end
  end

  @spec status(server(), keyword()) :: {:ok, map()} | {:error, reason()}
  def status(server, opts \\ []), do: :llama_nif.status(server, with_nil(opts))

  @spec session_info(server(), non_neg_integer(), keyword()) :: {:ok, map()} | {:error, reason()}
  def session_info(server, session, opts \\ []), do: :llama_nif.session_info(server, session, with_nil(opts))

  @doc "The generated text of a chat or completion result, or of a stream chunk (\"\" if none)."
  @spec content(map()) :: String.t()
  def content(%{"choices" => [%{"message" => %{"content" => c}} | _]}) when is_binary(c), do: c
  def content(%{"choices" => [%{"delta" => %{"content" => c}} | _]}) when is_binary(c), do: c
  def content(%{"content" => c}) when is_binary(c), do: c
  def content(_), do: ""

  @doc "`$LLAMA_MODEL`, else the default model of this checkout."
  @spec default_model_path() :: String.t()
  def default_model_path, do: :llama_nif.default_model_path()

  defp with_nil(opts) when is_map(opts), do: Map.put_new(opts, :null, nil)
  defp with_nil(opts) when is_list(opts), do: Keyword.put_new(opts, :null, nil)
  defp with_nil(opts), do: opts
end
