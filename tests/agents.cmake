# Real agent CLIs (opencode, pi, Qwen Code, Continue's cn) through loopwarden
# in front of a scripted looping model: tests/agents/run.sh. Installs the
# clients from the npm registry into ~/.cache/loopwarden-agents (or
# $LW_AGENTS_CACHE) on first use; a client that cannot be installed is skipped,
# and the test exits 77 (skipped) when none can. Checks outcomes against
# tests/agents/expect.txt (the client ended, the cut reached it, how many
# requests it sent for one loop). Results stay in <build>/agents-out/.
# `ctest -L agents` runs it alone, `ctest -LE agents` leaves it out.
add_test(NAME test_agents
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/agents/run.sh
                 --build ${PROJECT_BINARY_DIR} --out ${PROJECT_BINARY_DIR}/agents-out
                 --scenarios "text-loop call-loop"
                 --check ${CMAKE_CURRENT_SOURCE_DIR}/agents/expect.txt)
set_tests_properties(test_agents PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900
                     LABELS "agents;no_sanitize")
