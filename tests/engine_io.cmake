# Engine I/O: GGUF reader, loaders, writer, and the GGUF fuzz target.
lw_unit_test(test_gguf unit/test_gguf.c LIBS lw_engine)
lw_unit_test(test_load unit/test_load.c LIBS lw_engine)
lw_unit_test(test_gguf_write unit/test_gguf_write.c LIBS lw_engine)

lw_fuzz_target(fuzz_gguf 20000 LIBS lw_engine)

# Bounded in time: a hang (e.g. a blocking open) fails instead of stalling CI.
set_tests_properties(test_gguf test_load test_gguf_write PROPERTIES TIMEOUT 60)
