# lw_answer: the I/O-free answer core (events -> guards -> relay / hold /
# trip), shared by the server and loopwarden-audit. No libevent: built
# with -DLW_PROXY=OFF too (for loopwarden-audit).
add_library(lw_answer STATIC ${PROJECT_SOURCE_DIR}/proxy/answer.c)
lw_target_warnings(lw_answer)
target_include_directories(lw_answer PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(lw_answer PUBLIC lw_wire lw_guards)
