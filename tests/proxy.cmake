# The proxy's tests: a scripted upstream (tests/upstream, libevent evhttp) and
# integration tests that run the real loopwarden binary against it.
add_library(lw_scripted STATIC upstream/scripted.c)
lw_target_warnings(lw_scripted)
target_include_directories(lw_scripted PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/upstream)
target_link_libraries(lw_scripted PUBLIC PkgConfig::LIBEVENT PkgConfig::YAJL OpenSSL::SSL)

add_executable(lw-upstream upstream/main.c)
lw_target_warnings(lw-upstream)
target_link_libraries(lw-upstream PRIVATE lw_scripted)
set_target_properties(lw-upstream PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR})

# Unit: the key table, URL/listen parsing, loopwarden's own OpenAI output.
lw_unit_test(test_proxy_options unit/test_proxy_options.c LIBS lw_proxy)
# Unit: the memory of recent cuts (issue 12 item 12).
lw_unit_test(test_cutmemo unit/test_cutmemo.c LIBS lw_proxy)

# Integration: the real binary on loopback against lw-upstream.
lw_unit_test(test_proxy integration/test_proxy.c integration/harness.c LIBS lw_scripted)
target_include_directories(test_proxy PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration)
add_dependencies(test_proxy loopwarden lw-upstream)
if(TARGET loopwarden-audit)
  add_dependencies(test_proxy loopwarden-audit) # reads the proxy's recordings
endif()
set_tests_properties(test_proxy PROPERTIES TIMEOUT 180)

# Integration: the history check and the cut with agents' requests (issue 12
# items 10-14): new tasks, continuations of our own cuts, the memory of cuts
# across two instances, usage chunks, cut_finish_reason.
lw_unit_test(test_history_clients integration/test_history_clients.c integration/harness.c
             LIBS PkgConfig::YAJL)
target_include_directories(test_history_clients PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration)
add_dependencies(test_history_clients loopwarden lw-upstream)
set_tests_properties(test_history_clients PROPERTIES TIMEOUT 180)

# Integration: the request reader in the real binary (issue 11 defects 1 and 6).
lw_unit_test(test_request_limits integration/test_request_limits.c integration/harness.c
             LIBS lw_scripted)
target_include_directories(test_request_limits PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration)
add_dependencies(test_request_limits loopwarden lw-upstream)
set_tests_properties(test_request_limits PROPERTIES TIMEOUT 180)

# The official openai npm client through loopwarden (skipped when node/npm are absent).
add_test(NAME test_openai_npm
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/npm/run.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
set_tests_properties(test_openai_npm PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)

# bench_proxy: latency per chunk and streams/s, loopwarden vs direct (and
# nginx when installed). A plain program, never a ctest test.
add_executable(bench_proxy bench/bench_proxy.c integration/harness.c)
lw_target_warnings(bench_proxy)
target_include_directories(bench_proxy PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration)
target_compile_definitions(bench_proxy PRIVATE LW_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                           LW_BINARY_DIR="${PROJECT_BINARY_DIR}")
target_link_libraries(bench_proxy PRIVATE lw_scripted PkgConfig::LIBEVENT Threads::Threads)
add_dependencies(bench_proxy loopwarden)
set_target_properties(bench_proxy PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR})

# HTTP hardening (issue 11 defects 2, 3, 5, 6, 7): the real binary against a
# raw upstream thread that sends exact bytes (bad chunk sizes, bare CRs), a
# low RLIMIT_NOFILE, trickling clients, the global body cap.
lw_unit_test(test_http_hardening integration/test_http_hardening.c integration/harness.c
             LIBS lw_guards Threads::Threads PkgConfig::YAJL)
target_include_directories(test_http_hardening PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration)
add_dependencies(test_http_hardening loopwarden)
set_tests_properties(test_http_hardening PROPERTIES TIMEOUT 180)

# The HTTP head parser (proxy/wire/http_head.c): unit tests and its fuzz target.
lw_unit_test(test_http_head unit/test_http_head.c LIBS lw_wire)
lw_fuzz_target(fuzz_http_head 20000 LIBS lw_wire)
# The HTTP layer under the binary: accept() backoff at EMFILE, JSON strings.
lw_unit_test(test_http_server unit/test_http_server.c integration/harness.c LIBS lw_proxy)
target_include_directories(test_http_server PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration)
set_tests_properties(test_http_server test_http_head PROPERTIES TIMEOUT 120)

# bench_load: 1000 and 2000 concurrent streams byte-exact, time, loopwarden's
# peak RSS / VmPeak, and RSS over 20 rounds of 500 streams, beside a direct
# connection. A benchmark; ctest runs only its --smoke mode (a few streams,
# byte-exactness and clean exits, no figures asserted).
add_executable(bench_load bench/bench_load.c integration/harness.c)
lw_target_warnings(bench_load)
target_include_directories(bench_load PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration)
target_compile_definitions(bench_load PRIVATE LW_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                           LW_BINARY_DIR="${PROJECT_BINARY_DIR}")
add_dependencies(bench_load loopwarden lw-upstream)
set_target_properties(bench_load PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR})
add_test(NAME bench_load_smoke COMMAND bench_load --smoke)
set_tests_properties(bench_load_smoke PROPERTIES TIMEOUT 120)

# Integration: the streaming runtime (client write deadline, watchdog blind
# spots, UTF-8 in error messages, memory per stream), issue 11 defects 4, 5,
# 7 and 8.
lw_unit_test(test_runtime integration/test_runtime.c integration/harness.c LIBS lw_scripted)
target_include_directories(test_runtime PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration)
add_dependencies(test_runtime loopwarden lw-upstream)
set_tests_properties(test_runtime PROPERTIES TIMEOUT 180)

# Integration: no client can wedge the HTTP layer or make it hold memory
# (issue 11, second pass): the write deadline for unsent output, pipelined
# requests waiting for their reader, 503 past max_connections, a bounded
# lingering close, half-closing clients. The real binary against a raw
# upstream thread whose answers outgrow the socket buffers.
lw_unit_test(test_http_wedge integration/test_http_wedge.c integration/harness.c
             LIBS Threads::Threads PkgConfig::YAJL)
target_include_directories(test_http_wedge PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration)
add_dependencies(test_http_wedge loopwarden)
set_tests_properties(test_http_wedge PROPERTIES TIMEOUT 240)
