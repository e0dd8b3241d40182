# Engine I/O: GGUF reader, loaders, writer, and the GGUF fuzz target.
lw_unit_test(test_gguf unit/test_gguf.c LIBS lw_engine)
lw_unit_test(test_load unit/test_load.c LIBS lw_engine)
lw_unit_test(test_gguf_write unit/test_gguf_write.c LIBS lw_engine)
