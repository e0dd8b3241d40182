# loopwarden's command line end to end, the real binary: the config file and
# options (config/, proxy/main.c, proxy/options.c: --check-config against
# start-up, host names in --listen, -c, SIGHUP), and `loopwarden generate`
# on a model file truncated mid-run (engine/load.c).
foreach(t test_config_cli test_generate_cli)
  lw_unit_test(${t} integration/${t}.c integration/harness.c)
  target_include_directories(${t} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration)
  add_dependencies(${t} loopwarden)
  set_tests_properties(${t} PROPERTIES TIMEOUT 180)
endforeach()
