# Tests of the wire-format parsers, the config loader, the scenario corpus and
# loopwarden-audit (owned with proxy/wire, config/, audit/).
lw_unit_test(test_sse unit/test_sse.c LIBS lw_wire)
lw_unit_test(test_chunk unit/test_chunk.c LIBS lw_wire)
lw_unit_test(test_config unit/test_config.c LIBS lw_config)
lw_unit_test(test_corpus unit/test_corpus.c LIBS lw_audit_replay)
# loopwarden-audit end to end: scenarios, SSE files, a record folder, bad input.
add_test(NAME test_audit
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/audit/test_audit.sh
                 $<TARGET_FILE:loopwarden-audit> ${LW_TEST_DATA})

# Fuzz targets for the wire parsers and the config loader: libFuzzer targets
# with clang and -DLW_LIBFUZZER=ON; otherwise their main() (fuzz/wire_replay.h)
# replays the seed corpus plus bounded deterministic mutations under ctest.
foreach(fz sse chunk config)
  add_executable(fuzz_${fz} fuzz/fuzz_${fz}.c)
  lw_target_warnings(fuzz_${fz})
  target_include_directories(fuzz_${fz} PRIVATE ${PROJECT_SOURCE_DIR})
  if(fz STREQUAL "config")
    target_link_libraries(fuzz_${fz} PRIVATE lw_config)
  else()
    target_link_libraries(fuzz_${fz} PRIVATE lw_wire)
  endif()
  if(LW_LIBFUZZER)
    target_compile_definitions(fuzz_${fz} PRIVATE LW_LIBFUZZER)
    target_compile_options(fuzz_${fz} PRIVATE -fsanitize=fuzzer)
    target_link_options(fuzz_${fz} PRIVATE -fsanitize=fuzzer)
  else()
    add_test(NAME fuzz_${fz}_corpus
             COMMAND fuzz_${fz} -m 10000 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${fz})
    set_tests_properties(fuzz_${fz}_corpus PROPERTIES TIMEOUT 120)
  endif()
endforeach()
set_tests_properties(test_sse test_chunk test_config test_corpus test_audit PROPERTIES TIMEOUT 120)
