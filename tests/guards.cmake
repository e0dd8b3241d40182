# Guard library tests (guards/): one cmocka test per module, plus the
# benchmark (a plain executable, not run by ctest).
lw_unit_test(test_canon unit/test_canon.c LIBS lw_guards)
lw_unit_test(test_utf8 unit/test_utf8.c LIBS lw_guards)
lw_unit_test(test_guard_repeat unit/test_guard_repeat.c LIBS lw_guards)
lw_unit_test(test_guard_simhash unit/test_guard_simhash.c LIBS lw_guards)
lw_unit_test(test_guard_paraphrase unit/test_guard_paraphrase.c LIBS lw_guards)
lw_unit_test(test_guard_calls unit/test_guard_calls.c LIBS lw_guards)
# (the history is built from the request reader in lw_wire)
lw_unit_test(test_history unit/test_history.c LIBS lw_wire lw_guards)
lw_unit_test(test_guard_config unit/test_guard_config.c LIBS lw_guards)
lw_unit_test(test_pipeline unit/test_pipeline.c LIBS lw_guards)
# Count every allocation made by our code (the guard library is linked
# statically): the pipeline must not allocate per event.
target_link_options(test_pipeline PRIVATE
  -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc -Wl,--wrap=free)

# Benchmark: events/s and MB/s through the full pipeline (not a ctest test).
add_executable(bench_guards bench/bench_guards.c)
lw_target_warnings(bench_guards)
target_link_libraries(bench_guards PRIVATE lw_guards)

# fuzz_request moved to wire.cmake: it drives the request reader (lw_wire).
# Issue 12 item 11: what the guards read up to a trip, sent back as the last
# assistant message, trips the history check (every text loop of the corpus).
lw_unit_test(test_history_cut unit/test_history_cut.c LIBS lw_audit_replay)
set_tests_properties(test_history_cut PROPERTIES TIMEOUT 120)
