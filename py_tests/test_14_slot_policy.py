"""Slot policy: sessions return to their own slot; with slot_prompt_similarity a task without a
slot of its own goes where its prompt prefix is cached; otherwise the least recently used."""
from __future__ import annotations

import pytest

from conftest import new_server

pytestmark = pytest.mark.model

P = "You are a careful assistant who explains things about the Roman empire in detail. " * 3
Q = "Here is a list of fruits and vegetables that grow well in cold northern climates: " * 3


def cached_after(similarity: float) -> int:
    s = new_server({"n_parallel": 2, "slot_prompt_similarity": similarity})
    try:
        s.run(0, "completion", {"prompt": P, "n_predict": 1})        # slot 0
        s.run(0, "completion", {"prompt": Q, "n_predict": 1})        # slot 1
        # LRU alone would pick slot 0; Q's prefix is cached on slot 1
        r = s.run(0, "completion", {"prompt": Q + "Number one:", "n_predict": 1})
        return r["timings"]["cache_n"]
    finally:
        s.destroy()


def test_similar_prompt_goes_to_the_slot_holding_its_prefix():
    assert cached_after(0.5) > 20


def test_without_similarity_the_least_recently_used_slot_is_taken():
    assert cached_after(0.0) == 0


def test_a_session_returns_to_its_slot_and_reuses_its_cache():
    s = new_server({"n_parallel": 2})
    try:
        a = s.create_session({"system_prompt": P})
        b = s.create_session({"system_prompt": Q})
        a.chat("Hi", max_tokens=2)
        b.chat("Hi", max_tokens=2)
        s.run(0, "completion", {"prompt": "unrelated stateless work", "n_predict": 2})
        slot_a = a.info()["slot"]
        r = a.chat("And again?", max_tokens=2)
        assert a.info()["slot"] == slot_a
        assert r["usage"]["prompt_tokens_details"]["cached_tokens"] > 20
    finally:
        s.destroy()


def test_stateless_work_avoids_slots_that_sessions_call_home():
    # no host cache: only slot affinity can explain a cache hit
    s = new_server({"n_parallel": 3, "cache_ram_mib": 0})
    try:
        a = s.create_session({"system_prompt": P})
        a.chat("Hi", max_tokens=2)                                       # A: slot 0
        s.run(0, "completion", {"prompt": "stateless one", "n_predict": 2})  # slot 1
        b = s.create_session({"system_prompt": Q})
        b.chat("Hi", max_tokens=2)                                       # B: slot 2
        # LRU alone would take slot 0, A's home; the free stateless slot is taken instead
        s.run(0, "completion", {"prompt": "stateless two", "n_predict": 2})
        r = a.chat("Again?", max_tokens=2)
        assert r["usage"]["prompt_tokens_details"]["cached_tokens"] > 20
    finally:
        s.destroy()


def test_more_sessions_than_slots_come_back_warm_from_the_host_cache():
    s = new_server({"n_parallel": 2, "cache_ram_mib": 64})
    try:
        prompts = [P, Q, "A long briefing about the history of sailing ships and navigation. " * 3]
        sessions = [s.create_session({"system_prompt": p}) for p in prompts]
        for sess in sessions:                   # the third one evicts the first from its slot
            sess.chat("Hi", max_tokens=2)
        r = sessions[0].chat("Again?", max_tokens=2)
        assert r["usage"]["prompt_tokens_details"]["cached_tokens"] > 20
    finally:
        s.destroy()
