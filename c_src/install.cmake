# `make install`: libllama_server.so (with its SONAME links), llama_server.h, a pkg-config
# file and a CMake package (find_package(llama_server CONFIG) -> llama_server::llama_server).
# llama.cpp and ggml are inside the library, hidden: nothing of theirs is installed (their
# own install rules are not run, being in an EXCLUDE_FROM_ALL directory).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

target_include_directories(llama_server INTERFACE
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
set_target_properties(llama_server PROPERTIES PUBLIC_HEADER ${CMAKE_CURRENT_SOURCE_DIR}/include/llama_server.h)
install(TARGETS llama_server EXPORT llama_serverTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# the CUDA build's cudart and cuBLAS, beside the library that finds them through $ORIGIN
foreach(_pair ${LLAMA_NIF_CUDA_RUNTIME})
    string(REPLACE "=" ";" _p "${_pair}")
    list(GET _p 0 _real)
    list(GET _p 1 _soname)
    install(FILES ${_real} DESTINATION ${CMAKE_INSTALL_LIBDIR} RENAME ${_soname})
endforeach()

set(_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/llama_server)
install(EXPORT llama_serverTargets NAMESPACE llama_server:: DESTINATION ${_cmake_dir})
configure_package_config_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/llama_serverConfig.cmake.in
    ${CMAKE_BINARY_DIR}/llama_serverConfig.cmake INSTALL_DESTINATION ${_cmake_dir})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/llama_serverConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/llama_serverConfig.cmake ${CMAKE_BINARY_DIR}/llama_serverConfigVersion.cmake
    DESTINATION ${_cmake_dir})

# relocatable: the prefix is found from where the .pc file lies (pkg-config's ${pcfiledir})
file(RELATIVE_PATH PC_PREFIX_FROM_PCFILEDIR /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/llama_server.pc.in ${CMAKE_BINARY_DIR}/llama_server.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/llama_server.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# A fresh library in /usr/local/lib is found by the dynamic linker only after ldconfig:
# run it when installing as root into the real root (not a DESTDIR staging tree).
install(CODE "
    if (NOT \"\$ENV{DESTDIR}\" AND \"\${CMAKE_INSTALL_PREFIX}\" MATCHES \"^/usr(/local)?$\")
        execute_process(COMMAND id -u OUTPUT_VARIABLE _uid OUTPUT_STRIP_TRAILING_WHITESPACE)
        if (_uid STREQUAL \"0\")
            message(STATUS \"Running ldconfig\")
            execute_process(COMMAND ldconfig)
        endif()
    endif()")
