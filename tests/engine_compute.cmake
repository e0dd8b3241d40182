# Engine compute: kernels, model graph, sampler, end-to-end ids.
lw_unit_test(test_stories unit/test_stories.c LIBS lw_engine PkgConfig::YAJL)
