defmodule LlamaNifDocsTest do
  # Every public function of the Elixir modules has a @doc; the Erlang modules have doc
  # chunks where Code.fetch_docs/1 (and h/1 in iex) finds them (mix's llama_nif_docs compiler).
  use ExUnit.Case, async: true

  for module <- [LlamaNif, LlamaNif.Server, LlamaNif.Events, :llama_nif, :llama_nif_server, :llama_nif_events] do
    test "#{inspect(module)} is documented" do
      Code.ensure_loaded!(unquote(module))
      assert {:docs_v1, _, _, _, %{"en" => _}, _, entries} = Code.fetch_docs(unquote(module))

      missing =
        for {{:function, name, arity}, _, _, doc, _} <- entries,
            doc == :none or doc == %{},
            function_exported?(unquote(module), name, arity),
            {name, arity} not in [init: 1, handle_call: 3, handle_cast: 2, handle_info: 2, terminate: 2],
            do: {name, arity}

      assert missing == []
    end
  end
end
