# Engine compute: kernels, model graph, sampler, end-to-end ids.
lw_unit_test(test_stories unit/test_stories.c LIBS lw_engine PkgConfig::YAJL)
lw_unit_test(test_kernels unit/test_kernels.c LIBS lw_engine)
lw_unit_test(test_sampler unit/test_sampler.c LIBS lw_engine)
