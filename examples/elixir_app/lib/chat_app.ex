defmodule ChatApp do
  @moduledoc "Chat with the application's model from any process."

  @doc "One question, one answer (no history)."
  def ask(question) do
    with {:ok, result} <- LlamaNif.Server.chat(ChatApp.LLM, %{messages: [%{role: "user", content: question}],
                                                              n_predict: 32, temperature: 0}) do
      {:ok, LlamaNif.text(result)}
    end
  end

  @doc "A conversation owned by the calling process (closed when it exits)."
  def conversation(system_prompt \\ "Be brief."),
    do: LlamaNif.Server.open_session(ChatApp.LLM, %{system_prompt: system_prompt})

  @doc "One turn of a conversation."
  def say(session, text, n_predict \\ 16) do
    input = %{messages: [%{role: "user", content: text}], n_predict: n_predict, temperature: 0}

    with {:ok, result} <- LlamaNif.Server.chat(ChatApp.LLM, input, session: session) do
      {:ok, LlamaNif.text(result)}
    end
  end

  @doc "Two conversations at once, each in its own process; prints what each remembered."
  def demo do
    ["cobalt", "falcon"]
    |> Enum.map(fn word ->
      Task.async(fn ->
        {:ok, session} = conversation()
        {:ok, _} = say(session, "Remember the word #{word}. Reply OK.", 4)
        {:ok, answer} = say(session, "What word did I ask you to remember? Answer with the word only.", 6)
        {word, answer}
      end)
    end)
    |> Task.await_many(300_000)
    |> Enum.each(fn {word, answer} -> IO.puts("#{word}: #{String.trim(answer)}") end)
  end
end
