# Engine compute: kernels, model graph, sampler, end-to-end ids.
lw_unit_test(test_stories unit/test_stories.c LIBS lw_engine PkgConfig::YAJL)
lw_unit_test(test_kernels unit/test_kernels.c LIBS lw_engine)
lw_unit_test(test_sampler unit/test_sampler.c LIBS lw_engine)
# The test-model generator (also used by bench/bench_engine.sh).
add_library(lw_genmodel STATIC tools/genmodel.c)
lw_target_warnings(lw_genmodel)
target_link_libraries(lw_genmodel PUBLIC lw_engine)
add_executable(gen_model tools/gen_model.c)
lw_target_warnings(gen_model)
target_link_libraries(gen_model PRIVATE lw_genmodel)
lw_unit_test(test_model unit/test_model.c ref/ref.c LIBS lw_genmodel lw_engine)
lw_unit_test(test_sched unit/test_sched.c LIBS lw_engine Threads::Threads)
# Bounded: a deadlock in the scheduler fails instead of stalling CI.
set_tests_properties(test_sched PROPERTIES TIMEOUT 300)
# Scheduler throughput at 1, 2, 4, 8 concurrent streams (bench/bench_sched.sh).
add_executable(bench_sched bench/bench_sched.c)
lw_target_warnings(bench_sched)
target_include_directories(bench_sched PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(bench_sched PRIVATE lw_engine Threads::Threads)
