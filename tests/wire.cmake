# Tests of the wire-format parsers, the config loader, the scenario corpus and
# loopwarden-audit (owned with proxy/wire, config/, audit/).
lw_unit_test(test_sse unit/test_sse.c LIBS lw_wire)
lw_unit_test(test_chunk unit/test_chunk.c LIBS lw_wire)
lw_unit_test(test_config unit/test_config.c LIBS lw_config)
