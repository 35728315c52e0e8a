// llama.cpp's server loop runs every decode through server_queue::yield_to_queue(): it wakes
// a worker thread that serves /metrics and /slots requests (METRICS, SLOT_GET tasks) while the
// loop thread decodes, then waits for that worker to hand the queue back. We post no such
// task once a model is loaded (status comes from our own counters), so for us the hand-off
// only costs three thread wake-ups per decode, on cores that are all decoding: per-thread
// counters showed the worker waking 383 times in a 128-token generation and the loop thread
// preempted 420 times, 280 without it (README, "How it works"). Every object linked into our
// libraries calls this instead (-Wl,--wrap, c_src/CMakeLists.txt): the decode runs inline,
// on the loop thread, as the queue would have run it. Tasks posted meanwhile wait in the
// queue for the next loop turn, as the worker would have left them (it declines all but
// METRICS and SLOT_GET). An exception from the decode reaches the loop as before.
// py_tests/test_10 checks that every call goes here; if a new llama.cpp renames the
// function, that test fails instead of the saving silently going away.
#include <functional>

// server_queue::yield_to_queue(std::function<void()> &&), a member function: `this` first.
extern "C" void __wrap__ZN12server_queue14yield_to_queueEOSt8functionIFvvEE(void * /*queue*/,
                                                                            std::function<void()> * work) {
    (*work)();
}
