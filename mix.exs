defmodule LlamaNif.MixProject do
  use Mix.Project

  # Usable as `{:llama_nif, path: "..."}`: no hex packages, and the NIF is built by the
  # :llama_nif_make compiler below (make nif -> CMake) into this checkout's priv/.
  def project do
    [
      app: :llama_nif,
      version: "0.1.0",
      elixir: "~> 1.14",
      compilers: [:llama_nif_make] ++ Mix.compilers(),
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
  @moduledoc "Builds priv/llama_nif.so with `make nif` (CMake; incremental)."
  use Mix.Task.Compiler

  @root Path.dirname(__ENV__.file)

  @impl true
  def run(_args) do
    case System.cmd("make", ["-s", "-C", @root, "nif"], stderr_to_stdout: true, into: IO.stream(:stdio, :line)) do
      {_, 0} ->
        {:ok, []}

      {_, rc} ->
        Mix.shell().error("llama_nif: `make nif` failed (exit #{rc})")
        {:error, []}
    end
  end
end
