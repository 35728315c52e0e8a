"""For longer robustness runs against the C API through the binding: the fuzz harness
(`python -m llama_nif_tools.stress.fuzz`, `make fuzz`, atheris) and the soak
(`python -m llama_nif_tools.stress.soak`, `make soak-c`). py_tests/test_17 and test_18 run
short versions."""
