# cmake -DARCHIVE=lib.a -DSUFFIX=.cpu_x -DNM=nm -DOBJCOPY=objcopy -P rename_symbols.cmake
#
# Renames every symbol the archive defines to <name><SUFFIX>, in place: globals and weak
# symbols, so that variants never bind to each other's code, and local ones too, among them
# the COMDAT group signatures (e.g. a constructor's C5 group), without which the linker
# would keep one variant's copy of an inline function and drop the others'. References
# between the archive's own members follow the rename; references to symbols defined
# elsewhere (ggml-base, libc, libgomp) are left alone. A suffix after a dot keeps names
# readable in perf and gdb (demanglers print it as "[clone .cpu_x]").
foreach (v ARCHIVE SUFFIX NM OBJCOPY)
    if (NOT ${v})
        message(FATAL_ERROR "rename_symbols.cmake: -D${v}= is required")
    endif()
endforeach()

execute_process(COMMAND ${NM} --defined-only --format=posix ${ARCHIVE}
                OUTPUT_VARIABLE listing RESULT_VARIABLE rc)
if (NOT rc EQUAL 0)
    message(FATAL_ERROR "rename_symbols.cmake: ${NM} failed on ${ARCHIVE}")
endif()

string(REPLACE "\n" ";" lines "${listing}")
set(names "")
foreach (line IN LISTS lines)
    # "name type value size"; member headers look like "lib.a[obj.o]:"
    if (line MATCHES "^([^ ]+) ([A-Za-z]) ")
        list(APPEND names "${CMAKE_MATCH_1}")
    endif()
endforeach()
list(REMOVE_DUPLICATES names)   # a weak symbol may be defined by several members
set(map "")
foreach (name IN LISTS names)
    if (NOT name MATCHES "\\${SUFFIX}$")   # already renamed: a rerun on the same archive
        string(APPEND map "${name} ${name}${SUFFIX}\n")
    endif()
endforeach()
if (names STREQUAL "")
    message(FATAL_ERROR "rename_symbols.cmake: ${ARCHIVE} defines no symbols")
endif()
if (map STREQUAL "")
    return()
endif()

set(mapfile "${ARCHIVE}.rename")
file(WRITE ${mapfile} "${map}")
execute_process(COMMAND ${OBJCOPY} --redefine-syms=${mapfile} ${ARCHIVE} RESULT_VARIABLE rc)
if (NOT rc EQUAL 0)
    message(FATAL_ERROR "rename_symbols.cmake: ${OBJCOPY} --redefine-syms failed on ${ARCHIVE}")
endif()
