# Engine tokenizers: vocabulary vectors from ../shared/vocab, decoding, special tokens.
lw_unit_test(test_tokenizer unit/test_tokenizer.c LIBS lw_engine PkgConfig::YAJL Threads::Threads)

# fuzz_tokenizer: a libFuzzer target with clang and -DLW_LIBFUZZER=ON; otherwise
# its main() replays the seed corpus plus bounded deterministic mutations.
add_executable(fuzz_tokenizer fuzz/fuzz_tokenizer.c)
lw_target_warnings(fuzz_tokenizer)
target_include_directories(fuzz_tokenizer PRIVATE ${PROJECT_SOURCE_DIR})
target_compile_definitions(fuzz_tokenizer PRIVATE LW_SHARED_DIR="${LW_SHARED_DIR}")
target_link_libraries(fuzz_tokenizer PRIVATE lw_engine)
if(LW_LIBFUZZER)
  target_compile_definitions(fuzz_tokenizer PRIVATE LW_LIBFUZZER)
  target_compile_options(fuzz_tokenizer PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz_tokenizer PRIVATE -fsanitize=fuzzer)
else()
  add_test(NAME fuzz_tokenizer_corpus
           COMMAND fuzz_tokenizer -m 2000 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/tokenizer)
endif()
