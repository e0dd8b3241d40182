# loopwarden's command line and config file end to end (config/, proxy/main.c,
# proxy/options.c): --check-config against start-up, host names in --listen,
# -c, SIGHUP; and `loopwarden generate` on a model file truncated mid-run.
lw_unit_test(test_config_cli integration/test_config_cli.c integration/harness.c)
target_include_directories(test_config_cli PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration)
add_dependencies(test_config_cli loopwarden)
set_tests_properties(test_config_cli PROPERTIES TIMEOUT 180)
