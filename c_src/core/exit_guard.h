// A process that exits with live servers (no destroy before exit() or the end of main; an
// Erlang VM that halts) runs llama.cpp's static destructors while the core's threads still
// compute: a SIGSEGV (seen 3 runs in 5 with the C API; in ggml_cpu_extra_compute_forward on a
// destroyed static vector with the NIF). One list of live servers and one atexit handler,
// for the C API and the NIF alike, stop them first (exit_guard.cpp).
#pragma once

namespace lls {

class Server;

namespace exit_guard {

// Every Server is listed from its constructor to the end of its destructor.
void add(Server * s);
void remove(Server * s);

// Registers the handler (again): called after each model load (see exit_guard.cpp).
void arm();

// The handler has started: from then on the NIF sends no message, and no server frees
// llama.cpp's objects (that would race with their static destructors; the process is going
// away).
bool exiting();

// Around freeing a server's llama.cpp objects: begin_free() is false once exiting (leave
// them); otherwise the handler waits (bounded) for end_free().
bool begin_free();
void end_free();

}  // namespace exit_guard
}  // namespace lls
