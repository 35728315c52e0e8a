# The CUDA build (c_src/cuda.cmake): not part of `make test`. `make build-cuda` builds the C
# library and the NIF with ggml's CUDA backend in build-cuda/ (NIF in build-cuda/priv/),
# leaving the default CPU build alone; `LLAMA_BACKEND=cuda make build` makes build/ and
# priv/ the CUDA build instead. CUDA_ARCH=90;89 picks the GPU architectures (default 90).
CUDA_ARCH ?=

.PHONY: build-cuda

build-cuda: deps source
	$(TOOL) build --cuda $(if $(CUDA_ARCH),--cuda-arch '$(CUDA_ARCH)') --build-dir build-cuda \
	    --option LLAMA_NIF_PRIV_DIR=$(CURDIR)/build-cuda/priv llama_server llama_nif
