# The CUDA build (-DLLAMA_NIF_CUDA=ON): ggml's CUDA backend compiled into our libraries,
# beside the CPU variants. Included by the top CMakeLists before llama.cpp is added.
#
# Why compiled in, not a separate backend file: our libraries hide a private, renamed copy of
# ggml (no shared libggml-base to plug a module into). What keeps one install working with
# and without a GPU is how it links:
#   - GGML_CUDA_NO_VMM: no link to the driver (libcuda.so.1). cudart opens the driver itself at
#     run time; with no driver or no GPU, ggml's CUDA registry has 0 devices and the CPU runs.
#   - cudart and cuBLAS are shared libraries copied beside ours (RPATH $ORIGIN), so the
#     library loads on a machine with no CUDA toolkit installed.
#
# cuBLAS comes from PyPI (nvidia-cublas, see pins.CUBLAS;
# `python -m llama_nif_tools build --cuda` fetches it) unless LLAMA_NIF_CUBLAS_DIR points at a folder with include/ and lib/.
set(LLAMA_NIF_CUDA_ARCHITECTURES "90" CACHE STRING
    "CUDA architectures of the CUDA build (CMAKE_CUDA_ARCHITECTURES syntax; 90 = H100/H200)")
set(LLAMA_NIF_CUBLAS_DIR "" CACHE PATH "cuBLAS folder (include/, lib/); empty: the toolkit's own")

set(CMAKE_CUDA_ARCHITECTURES "${LLAMA_NIF_CUDA_ARCHITECTURES}")   # read by ggml-cuda
set(GGML_CUDA         ON  CACHE BOOL "" FORCE)
set(GGML_CUDA_NO_VMM  ON  CACHE BOOL "" FORCE)   # no libcuda.so.1 in NEEDED: loads without a driver
set(GGML_CUDA_GRAPHS  ON  CACHE BOOL "" FORCE)

if (LLAMA_NIF_CUBLAS_DIR)
    # FindCUDAToolkit looks for cuBLAS in the toolkit; the PyPI wheel has only versioned names
    foreach(_lib cublas cublasLt)
        file(GLOB _found "${LLAMA_NIF_CUBLAS_DIR}/lib/lib${_lib}.so*")
        if (NOT _found)
            message(FATAL_ERROR "LLAMA_NIF_CUBLAS_DIR=${LLAMA_NIF_CUBLAS_DIR} has no lib/lib${_lib}.so*")
        endif()
        list(GET _found 0 _first)
        set(CUDA_${_lib}_LIBRARY "${_first}" CACHE FILEPATH "" FORCE)
    endforeach()
endif()

# After llama.cpp is added: cuBLAS headers, and the shared CUDA libraries a target needs at run
# time copied beside it (build tree) and installed beside libllama_server.so.
function(llama_nif_cuda_finish)
    if (LLAMA_NIF_CUBLAS_DIR)
        target_include_directories(ggml-cuda PRIVATE "${LLAMA_NIF_CUBLAS_DIR}/include")
    endif()
    find_package(CUDAToolkit REQUIRED)
    set(_runtime "")
    foreach(_lib ${CUDA_cublas_LIBRARY} ${CUDA_cublasLt_LIBRARY} ${CUDA_cudart_LIBRARY})
        get_filename_component(_real "${_lib}" REALPATH)
        # the file's SONAME is what the dynamic loader looks for
        execute_process(COMMAND objdump -p "${_real}" OUTPUT_VARIABLE _dyn)
        string(REGEX MATCH "SONAME +([^\n ]+)" _m "${_dyn}")
        if (NOT CMAKE_MATCH_1)
            message(FATAL_ERROR "no SONAME in ${_real}")
        endif()
        list(APPEND _runtime "${_real}=${CMAKE_MATCH_1}")
    endforeach()
    set(LLAMA_NIF_CUDA_RUNTIME "${_runtime}" CACHE INTERNAL "real path=SONAME of the CUDA libraries shipped")
endfunction()

# Copies the CUDA libraries next to TARGET's output after each link.
function(llama_nif_cuda_beside target)
    foreach(_pair ${LLAMA_NIF_CUDA_RUNTIME})
        string(REPLACE "=" ";" _p "${_pair}")
        list(GET _p 0 _real)
        list(GET _p 1 _soname)
        add_custom_command(TARGET ${target} POST_BUILD
            COMMAND ${CMAKE_COMMAND} -E copy_if_different "${_real}" "$<TARGET_FILE_DIR:${target}>/${_soname}")
    endforeach()
    set_target_properties(${target} PROPERTIES BUILD_RPATH "\$ORIGIN" INSTALL_RPATH "\$ORIGIN")
endfunction()
