# A small application that depends on llama_nif as a path dependency: a supervision tree
# with a LlamaNif.Server, and a chat module any process can call.
#
#   cd examples/elixir_app && mix run -e 'ChatApp.demo()'
#
# The model: $LLAMA_MODEL, else the checkout's default model (make model).
defmodule ChatApp.MixProject do
  use Mix.Project

  def project do
    [app: :chat_app, version: "0.1.0", elixir: "~> 1.14", deps: [{:llama_nif, path: "../.."}]]
  end

  def application do
    [mod: {ChatApp.Application, []}, extra_applications: [:logger]]
  end
end
