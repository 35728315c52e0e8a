defmodule LlamaNifExamplesTest do
  # The example applications, built and run as a user would: examples/elixir_app (mix, a
  # path dependency) and examples/erlang_app (rebar3, _checkouts). Each runs two
  # conversations at once and prints what each session remembered. A second compile with
  # nothing changed prints nothing of llama_nif's build.
  use ExUnit.Case, async: false

  @root Path.expand("..", __DIR__)
  # the examples build in their own _build/ (dev profile), not in this test run's
  @env [{"MIX_ENV", "dev"}, {"HEX_OFFLINE", "1"}]

  defp cmd(command, args, dir) do
    System.cmd(command, args, cd: Path.join(@root, dir), env: @env, stderr_to_stdout: true)
  end

  defp remembered(out) do
    for word <- ["cobalt", "falcon"] do
      assert out =~ ~r/^#{word}: #{word}$/mi
    end
  end

  @tag timeout: 900_000
  test "examples/elixir_app: a supervision tree and a chat module over {:llama_nif, path: ...}" do
    {out, status} = cmd("mix", ["run", "-e", "ChatApp.demo()"], "examples/elixir_app")
    assert status == 0, out
    remembered(out)
    assert {"", 0} = cmd("mix", ["compile"], "examples/elixir_app")
  end

  @tag timeout: 900_000
  test "examples/erlang_app: a supervisor and a chat module over _checkouts/llama_nif" do
    {out, status} = cmd("rebar3", ["compile"], "examples/erlang_app")
    assert status == 0, out
    {out, status} = cmd("rebar3", ["compile"], "examples/erlang_app")
    assert status == 0, out
    refute out =~ "[llama_nif]"
    refute out =~ "edoc"

    # the app's run, and llama_nif's doc chunks where code:get_doc/1 looks
    eval = "chat_app:demo(), {ok, {docs_v1, _, erlang, _, _, _, _}} = code:get_doc(llama_nif_server), halt()."
    paths = Path.wildcard(Path.join(@root, "examples/erlang_app/_build/default/{lib,checkouts}/*/ebin"))
    {out, status} = cmd("erl", ["-noshell", "-pa" | paths] ++ ["-eval", eval], "examples/erlang_app")
    assert status == 0, out
    remembered(out)
  end
end
