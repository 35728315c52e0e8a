"""The demo: four chat sessions streaming their answers at once from one server handle."""
import sys
import threading
import time

from . import binding
from .build import fetch
from .progress import say

QUESTIONS = [
    "My name is Ada. In one sentence, what is a mutex?",
    "My name is Linus. Write a Python one-liner that reverses a string.",
    "My name is Grace. What is the capital of France? Answer in one sentence.",
    "My name is Joe. Name three features of Erlang in one sentence.",
]
FOLLOW_UP = "What is my name? Answer with the name only."


def main(n_sessions: int = 4) -> int:
    model = fetch.model()
    tty = sys.stdout.isatty()
    say(f"loading {model.name}")
    t0 = time.monotonic()
    server = binding.Server({"n_parallel": n_sessions, "n_ctx": 2048})
    try:
        server.load_model(model)
        be = server.status()["backend"]
        say(f"loaded in {time.monotonic() - t0:.1f} s on the CPU variant '{be['cpu_variant']}' "
            f"({be['cpu_build']} build); {n_sessions} sessions ask at once, streaming:\n")
        sessions = [server.create_session({"system_prompt": "You are a concise assistant.", "temperature": 0})
                    for _ in range(n_sessions)]
        texts = [""] * n_sessions
        counts = [0] * n_sessions
        lock = threading.Lock()

        def redraw():
            if not tty:
                return
            sys.stdout.write(f"\x1b[{n_sessions}F")
            for i, t in enumerate(texts):
                line = t.replace("\n", " ")[-100:]
                sys.stdout.write(f"\x1b[2K[session {sessions[i].id}] {line}\n")
            sys.stdout.flush()

        def ask(i: int):
            q = QUESTIONS[i % len(QUESTIONS)]
            for chunk in server.stream(sessions[i].id, {"messages": [{"role": "user", "content": q}],
                                                         "max_tokens": 96}):
                delta = chunk.get("choices", [{}])[0].get("delta", {}) if chunk.get("choices") else {}
                with lock:
                    if delta.get("content"):
                        texts[i] += delta["content"]
                        counts[i] += 1
                    redraw()

        if tty:
            sys.stdout.write("\n" * n_sessions)
        t1 = time.monotonic()
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(n_sessions)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.monotonic() - t1
        if not tty:
            for i, t in enumerate(texts):
                print(f"[session {sessions[i].id}] Q: {QUESTIONS[i % len(QUESTIONS)]}\n    A: {t.strip()}")
        total = sum(counts)
        print()
        say(f"{n_sessions} concurrent streams: {total} chunks in {wall:.2f} s = {total / wall:.1f} tokens/s aggregate")

        say("second turn on every session (the session carries the history):")
        for s in sessions:
            r = s.chat(FOLLOW_UP, max_tokens=12)
            print(f"[session {s.id}] {FOLLOW_UP} -> {binding.reply_text(r).strip()!r}")
        st = server.status()
        say(f"server: {st['totals']['generated_tokens']} tokens generated, "
            f"{st['totals']['tokens_per_second']:.1f} tokens/s per sequence, slots: "
            + ", ".join(f"{s['id']}:{s['tokens_cached']} cached" for s in st["slots"]))
    finally:
        server.destroy()
    return 0
