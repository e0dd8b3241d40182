# Engine tokenizers: vocabulary vectors from ../shared/vocab, decoding, special tokens.
lw_unit_test(test_tokenizer unit/test_tokenizer.c LIBS lw_engine PkgConfig::YAJL Threads::Threads)

lw_fuzz_target(fuzz_tokenizer 2000 LIBS lw_engine)
