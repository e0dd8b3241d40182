# Tests of the wire-format parsers, the config loader, the scenario corpus and
# loopwarden-audit (owned with proxy/wire, config/, audit/).
lw_unit_test(test_sse unit/test_sse.c LIBS lw_wire)
lw_unit_test(test_chunk unit/test_chunk.c LIBS lw_wire)
lw_unit_test(test_request unit/test_request.c LIBS lw_wire)
lw_unit_test(test_config unit/test_config.c LIBS lw_config)
lw_unit_test(test_corpus unit/test_corpus.c LIBS lw_audit_replay)
# loopwarden-audit end to end: scenarios, SSE files, a record folder, bad input.
add_test(NAME test_audit
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/audit/test_audit.sh
                 $<TARGET_FILE:loopwarden-audit> ${LW_TEST_DATA})
# loopwarden-audit --html renders (a headless Chromium screenshot checked by
# png_check, libpng); skipped without chromium or libpng.
pkg_check_modules(LIBPNG IMPORTED_TARGET libpng)
if(LIBPNG_FOUND)
  add_executable(png_check audit/png_check.c)
  lw_target_warnings(png_check)
  target_link_libraries(png_check PRIVATE PkgConfig::LIBPNG)
  set(LW_PNG_CHECK $<TARGET_FILE:png_check>)
else()
  set(LW_PNG_CHECK png_check-not-built)
endif()
add_test(NAME test_html
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/audit/test_html.sh
                 $<TARGET_FILE:loopwarden-audit> ${LW_TEST_DATA} ${LW_PNG_CHECK})
set_tests_properties(test_html PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180)

# Fuzz targets for the wire parsers and the config loader (lw_fuzz_target).
lw_fuzz_target(fuzz_sse 10000 LIBS lw_wire)
lw_fuzz_target(fuzz_chunk 10000 LIBS lw_wire)
lw_fuzz_target(fuzz_config 10000 LIBS lw_config)
# fuzz_request: what loopwarden reads from a request body before the upstream
# answers (the request reader, the history built from it and its check,
# canonical arguments, one answer's pipeline against that history).
lw_fuzz_target(fuzz_request 1000 LIBS lw_wire)
# fuzz_chat: the whole request path, body in -> response out: an in-process
# server whose upstream is the scripted one (tests/upstream), on loopback.
# It needs the server (libevent): not in a -DLW_PROXY=OFF build.
if(LW_PROXY)
  lw_fuzz_target(fuzz_chat 1000 LIBS lw_proxy lw_scripted)
  target_sources(fuzz_chat PRIVATE integration/harness.c)
  target_include_directories(fuzz_chat PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration)
  target_compile_definitions(fuzz_chat PRIVATE LW_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  set_tests_properties(fuzz_chat_corpus PROPERTIES TIMEOUT 300)
endif()
set_tests_properties(test_sse test_chunk test_request test_config test_corpus test_audit
                     PROPERTIES TIMEOUT 120)
# About 80 s each under ASan on a loaded 2-core machine.
set_tests_properties(fuzz_request_corpus PROPERTIES TIMEOUT 300)
