defmodule LlamaNif.Server do
  @moduledoc """
  A supervised llama_nif server (`:llama_nif_server`): a process that owns one loaded model
  and is called by name from any process.

      children = [
        {LlamaNif.Server, name: MyLLM, model: "models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
         config: %{n_parallel: 4, n_ctx: 4096}}
      ]
      Supervisor.start_link(children, strategy: :one_for_one)

      {:ok, result} = LlamaNif.Server.chat(MyLLM, "Name a color.")
      LlamaNif.text(result)

      {:ok, session} = LlamaNif.Server.open_session(MyLLM, %{system_prompt: "Be brief."})
      {:ok, _} = LlamaNif.Server.chat(MyLLM, "Remember the word cobalt.", session: session)

      MyLLM |> LlamaNif.Server.text_stream(:chat, "Count to 5.") |> Enum.each(&IO.write/1)

  The model is loaded when the server starts, so `start_link/1` returns when it can serve
  (or `{:error, reason}`), and a supervisor's restart loads it again. The NIF server lives in
  this process only: when the process exits, the NIF server is freed and its tasks end as
  cancelled.

  Calls block the caller only: the server queues the task with the caller as its receiver,
  and the caller waits for the result (`timeout:` ms for the whole call, default 60_000; on
  timeout the task is cancelled). A caller that exits has its task cancelled.

  Sessions belong to the process that opens them (closed when it exits), to another process
  (`owner: pid`) or to the server (`owner: :server`); after a restart of the server they
  give `{:error, {:session_not_found, _}}`.

  Inputs are those of `LlamaNif.create_task/5` (maps with atom or string keys; text as
  strings, charlists or iodata); each call also takes a bare text, and chat a message list.
  Results are maps with string keys, JSON null as `nil`. Errors are `{:error, {code, detail}}`;
  `code` `:server_down` means no server answers to that name.

  A task's end emits one event `[:llama_nif, :task, :stop]` (see `LlamaNif.Events`), in the
  process that takes it: a blocking call (`chat/3`, ..., `run/4`, also on its timeout)
  emits it itself, always with `duration`; a task of `stream/4` or `async/4` when its
  stream, `await/2` or `LlamaNif.next_chunk/2` takes its end (with `duration` when that
  process started it). Metadata: `server`, `type`, `task_id`, `session`, `outcome` (`:ok` or
  the error code), `error`.
  """

  @typedoc "A started server: its name (an atom), a pid, `{:global, term}` or `{:via, module, term}`."
  @type server_ref :: atom() | pid() | {:global, term()} | {:via, module(), term()}
  @typedoc "A session of one run of a server (opaque)."
  @type session :: :llama_nif_server.session()
  @type reason :: LlamaNif.reason()
  @typedoc "Input of a task: a map, a JSON string, or (for the helpers) a bare text or message list."
  @type input :: map() | String.t() | charlist() | [map()]

  @doc """
  A child spec. Options: `name:` (an atom, or `{:global, _}` / `{:via, _, _}`), `model:` (the
  GGUF path, required), `config:` (the server config of `LlamaNif.init_server/1`),
  `model_config:`, and `id:` (default: the name).
  """
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    opts |> Map.new() |> :llama_nif_server.child_spec() |> Map.put(:start, {__MODULE__, :start_link, [opts]})
  end

  @doc "Starts the server linked to the caller, with the options of `child_spec/1`; loads the model first."
  @spec start_link(keyword()) :: {:ok, pid()} | {:error, term()}
  def start_link(opts), do: opts |> Map.new() |> Map.delete(:id) |> :llama_nif_server.start_link()

  @doc "Stops the server: its NIF server is destroyed and its tasks end as cancelled."
  @spec stop(server_ref(), timeout()) :: :ok
  def stop(server, timeout \\ :infinity), do: :llama_nif_server.stop(server, timeout)

  @doc """
  A chat turn: `input` is the user's text, a list of messages, or a chat input map.
  Options: `session:`, `timeout:` (ms, default 60_000), `format: :json`.
  """
  @spec chat(server_ref(), input(), keyword()) :: {:ok, map()} | {:error, reason()}
  def chat(server, input, opts \\ []), do: :llama_nif_server.chat(server, input, call_opts(opts))

  @doc "A completion: `input` is the prompt text, `{:tokens, ids}`, or a completion input map."
  @spec complete(server_ref(), input() | {:tokens, [integer()]}, keyword()) :: {:ok, map()} | {:error, reason()}
  def complete(server, input, opts \\ []), do: :llama_nif_server.complete(server, input, call_opts(opts))

  @doc "Embeddings of a text or a list of texts (an embedding model, `model_config: %{embedding: true}`)."
  @spec embed(server_ref(), input(), keyword()) :: {:ok, map() | [map()]} | {:error, reason()}
  def embed(server, input, opts \\ []), do: :llama_nif_server.embed(server, input, call_opts(opts))

  @doc "Scores `documents` against `query` (a reranker model)."
  @spec rerank(server_ref(), String.t(), [String.t()], keyword()) :: {:ok, term()} | {:error, reason()}
  def rerank(server, query, documents, opts \\ []),
    do: :llama_nif_server.rerank(server, query, documents, call_opts(opts))

  @doc ~S'Token ids of a text: `{:ok, %{"tokens" => ids}}`.'
  @spec tokenize(server_ref(), input(), keyword()) :: {:ok, map()} | {:error, reason()}
  def tokenize(server, input, opts \\ []), do: :llama_nif_server.tokenize(server, input, call_opts(opts))

  @doc ~S'The text of token ids: `{:ok, %{"content" => text}}`.'
  @spec detokenize(server_ref(), [integer()] | map(), keyword()) :: {:ok, map()} | {:error, reason()}
  def detokenize(server, ids, opts \\ []), do: :llama_nif_server.detokenize(server, ids, call_opts(opts))

  @doc "Runs a task of any type and waits for its result in the calling process (options as `chat/3`)."
  @spec run(server_ref(), LlamaNif.task_type(), map() | String.t(), keyword()) :: {:ok, term()} | {:error, reason()}
  def run(server, type, input, opts \\ []), do: :llama_nif_server.run(server, type, input, call_opts(opts))

  @doc """
  Queues a task and returns its id; its messages (`{:llama_done, id, result}`, ...) go to
  the caller, or to `reply_to: pid`, which then owns the task. `stream: true` adds chunks.
  `await/2` waits for the result in that process.
  """
  @spec async(server_ref(), LlamaNif.task_type(), input(), keyword()) :: {:ok, pos_integer()} | {:error, reason()}
  def async(server, type, input, opts \\ []), do: :llama_nif_server.async(server, type, input, call_opts(opts))

  @doc "Waits for the result of a task started by `async/4`; on timeout the task goes on."
  @spec await(pos_integer(), timeout()) :: {:ok, term()} | {:error, reason()}
  def await(task, timeout \\ 60_000), do: :llama_nif_server.await(task, timeout)

  @doc "Cancels a task; its receiver gets `{:llama_error, id, {:cancelled, _}}`."
  @spec cancel(server_ref(), pos_integer()) :: :ok | {:error, reason()}
  def cancel(server, task), do: :llama_nif_server.cancel(server, task)

  @doc """
  A streaming task (`:chat` or `:completion`) as a lazy stream of `{:chunk, chunk}` elements
  ending with `{:done, result}` or `{:error, reason}`, like `LlamaNif.stream/5`. Consume it in
  the calling process; halting early cancels the task. Options: `session:`, `timeout:` (ms
  per message, default 60_000).
  """
  @spec stream(server_ref(), LlamaNif.task_type(), input(), keyword()) :: {:ok, Enumerable.t()} | {:error, reason()}
  def stream(server, type, input, opts \\ []) do
    {timeout, opts} = Keyword.pop(opts, :timeout, 60_000)

    with {:ok, task} <- :llama_nif_server.stream(server, type, input, call_opts(opts)) do
      {:ok, LlamaNif.task_stream(task, timeout, fn -> :llama_nif_server.cancel(server, task) end)}
    end
  end

  @doc """
  The generated text of a streaming chat or completion, as a lazy stream of non-empty
  strings (empty deltas skipped). An error raises `LlamaNif.Error` while enumerating.
  """
  @spec text_stream(server_ref(), LlamaNif.task_type(), input(), keyword()) :: Enumerable.t()
  def text_stream(server, type, input, opts \\ []) do
    case stream(server, type, input, opts) do
      {:ok, stream} -> LlamaNif.texts(stream)
      {:error, reason} -> raise LlamaNif.Error, reason: reason
    end
  end

  @doc """
  Opens a session. `config`: `system_prompt`, `keep_history`, task defaults (`temperature`,
  ...). Options: `owner:` the caller (default), a pid, or `:server`.
  """
  @spec open_session(server_ref(), map() | String.t(), keyword()) :: {:ok, session()} | {:error, reason()}
  def open_session(server, config \\ %{}, opts \\ []),
    do: :llama_nif_server.open_session(server, config, Map.new(opts))

  @doc "Closes a session; its tasks in flight end as cancelled."
  @spec close_session(server_ref(), session()) :: :ok | {:error, reason()}
  def close_session(server, session), do: :llama_nif_server.close_session(server, session)

  @doc "A session's state: message and task counts, slot, config."
  @spec session_info(server_ref(), session()) :: {:ok, map()} | {:error, reason()}
  def session_info(server, session) do
    :llama_nif_server.session_info(server, session, %{null: nil})
  end

  @doc "The server's status: slots, queue, totals, model."
  @spec status(server_ref()) :: {:ok, map()} | {:error, reason()}
  def status(server) do
    :llama_nif_server.status(server, %{null: nil})
  end

  defp call_opts(opts) when is_list(opts), do: opts |> Map.new() |> Map.put_new(:null, nil)
  defp call_opts(opts) when is_map(opts), do: Map.put_new(opts, :null, nil)
end
