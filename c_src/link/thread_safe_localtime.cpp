// llama.cpp's chat templates call localtime() for the date they offer a template
// (common/chat.cpp format_time, jinja's strftime_now). We render templates on many callers'
// threads at once, and localtime() fills one static buffer for the whole process: a data race
// that ThreadSanitizer reported, and a torn date in a prompt at worst. Every object linked
// into our libraries calls this instead (-Wl,--wrap=localtime, c_src/CMakeLists.txt): the
// same result in a buffer per thread.
#include <ctime>

extern "C" struct tm * __wrap_localtime(const time_t * t) {
    thread_local struct tm buf;
    return localtime_r(t, &buf);
}
