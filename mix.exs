defmodule LlamaNif.MixProject do
  use Mix.Project

  # Usable as `{:llama_nif, path: "..."}`: no hex packages, and the NIF is built by the
  # :llama_nif_make compiler below (make nif -> CMake) into this checkout's priv/.
  def project do
    [
      app: :llama_nif,
      version: "0.1.0",
      elixir: "~> 1.14",
      compilers: [:llama_nif_make] ++ Mix.compilers() ++ [:llama_nif_docs],
      erlc_paths: ["src"],
      elixirc_paths: ["lib"],
      deps: [],
      test_pattern: "*_test.exs",
      description: "llama.cpp server core as an Erlang NIF: sessions, concurrent tasks, streaming"
    ]
  end

  def application do
    [extra_applications: []]
  end
end

defmodule Mix.Tasks.Compile.LlamaNifMake do
  @moduledoc """
  Builds priv/llama_nif.so with `make nif` (CMake; incremental). Skipped, silently, when the
  library is newer than every source it is built from, or when LLAMA_NIF_SKIP_BUILD is set
  (an already built priv/llama_nif.so is used).
  """
  use Mix.Task.Compiler

  @root Path.dirname(__ENV__.file)

  @impl true
  def run(_args) do
    if System.get_env("LLAMA_NIF_SKIP_BUILD") not in [nil, ""] or up_to_date?() do
      {:noop, []}
    else
      case System.cmd("make", ["-s", "-C", @root, "nif"], stderr_to_stdout: true, into: IO.stream(:stdio, :line)) do
        {_, 0} ->
          {:ok, []}

        {_, rc} ->
          Mix.shell().error("llama_nif: `make nif` failed (exit #{rc})")
          {:error, []}
      end
    end
  end

  # the NIF against what it is built from: our C/C++ and CMake files, the pins of llama.cpp
  defp up_to_date? do
    case File.stat(Path.join(@root, "priv/llama_nif.so"), time: :posix) do
      {:ok, %{mtime: built}} ->
        sources =
          Path.wildcard(Path.join(@root, "c_src/**/*")) ++
            Enum.map(["CMakeLists.txt", "python/llama_nif_tools/build/pins.py"], &Path.join(@root, &1))

        Enum.all?(sources, fn f ->
          case File.stat(f, time: :posix) do
            {:ok, %{type: :regular, mtime: t}} -> t <= built
            _ -> true
          end
        end)

      _ ->
        false
    end
  end
end

defmodule Mix.Tasks.Compile.LlamaNifDocs do
  @moduledoc """
  Writes EEP-48 doc chunks of the Erlang modules (edoc) to the app's doc/chunks/, where
  `:code.get_doc/1` and `h :llama_nif` find them; only when a source is newer than its chunk.
  """
  use Mix.Task.Compiler

  @root Path.dirname(__ENV__.file)

  @impl true
  def run(_args) do
    dir = Path.join(Mix.Project.app_path(), "doc")
    sources = Path.wildcard(Path.join(@root, "src/*.erl"))

    stale =
      Enum.filter(sources, fn src ->
        chunk = Path.join([dir, "chunks", Path.basename(src, ".erl") <> ".chunk"])
        mtime(chunk) < mtime(src)
      end)

    if stale == [] do
      {:noop, []}
    else
      opts = [doclet: :edoc_doclet_chunks, layout: :edoc_layout_chunks, dir: String.to_charlist(dir), preprocess: true]

      case :edoc.files(Enum.map(sources, &String.to_charlist/1), opts) do
        :ok ->
          {:ok, []}

        other ->
          Mix.shell().error("llama_nif: edoc failed: #{inspect(other)}")
          {:error, []}
      end
    end
  end

  defp mtime(path) do
    case File.stat(path, time: :posix) do
      {:ok, %{mtime: t}} -> t
      _ -> 0
    end
  end
end
