# ExUnit on the real model (LLAMA_MODEL, else the checkout's default model). A missing
# model fails the tests; it does not skip them.
model = :llama_nif_debug.default_model_path()

unless File.regular?(model) do
  raise "model not found: #{model} (set LLAMA_MODEL or run `make model`)"
end

defmodule LlamaNif.TestHelper do
  def server(config \\ %{}) do
    defaults = %{n_parallel: 2, n_ctx: 512, model: :llama_nif_debug.default_model_path(), log_level: "error"}
    {:ok, server} = LlamaNif.init_server(Map.merge(defaults, config))
    server
  end

  def chat(text, n \\ 8), do: %{messages: [%{role: "user", content: text}], n_predict: n, temperature: 0}

  def live_servers, do: :llama_nif_debug.info().servers
end

# for @moduletag :capture_log (the app itself needs no :logger)
{:ok, _} = Application.ensure_all_started(:logger)
ExUnit.start(timeout: 600_000)
