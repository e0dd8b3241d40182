# Engine tokenizers: vocabulary vectors from ../shared/vocab, decoding, special tokens.
lw_unit_test(test_tokenizer unit/test_tokenizer.c LIBS lw_engine PkgConfig::YAJL)
