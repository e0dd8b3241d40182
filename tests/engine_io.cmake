# Engine I/O: GGUF reader, loaders, writer, and the GGUF fuzz target.
lw_unit_test(test_gguf unit/test_gguf.c LIBS lw_engine)
lw_unit_test(test_load unit/test_load.c LIBS lw_engine)
lw_unit_test(test_gguf_write unit/test_gguf_write.c LIBS lw_engine)

# fuzz_gguf: a libFuzzer target with clang and -DLW_LIBFUZZER=ON; otherwise its
# main() replays the seed corpus plus bounded deterministic mutations.
add_executable(fuzz_gguf fuzz/fuzz_gguf.c)
lw_target_warnings(fuzz_gguf)
target_link_libraries(fuzz_gguf PRIVATE lw_engine)
if(LW_LIBFUZZER)
  target_compile_definitions(fuzz_gguf PRIVATE LW_LIBFUZZER)
  target_compile_options(fuzz_gguf PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz_gguf PRIVATE -fsanitize=fuzzer)
else()
  add_test(NAME fuzz_gguf_corpus
           COMMAND fuzz_gguf -m 20000 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/gguf)
endif()

# Bounded in time: a hang (e.g. a blocking open) fails instead of stalling CI.
set_tests_properties(test_gguf test_load test_gguf_write PROPERTIES TIMEOUT 60)
if(NOT LW_LIBFUZZER)
  set_tests_properties(fuzz_gguf_corpus PROPERTIES TIMEOUT 120)
endif()
