defmodule ChatApp.Application do
  @moduledoc false
  use Application

  @default_model Path.expand("../../../../models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", __DIR__)

  @impl true
  def start(_type, _args) do
    model = System.get_env("LLAMA_MODEL", @default_model)

    children = [
      {LlamaNif.Server, name: ChatApp.LLM, model: model, config: %{n_parallel: 2, n_ctx: 1024, log_level: "error"}}
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: ChatApp.Supervisor)
  end
end
