# tests/tokenizer.cmake - the text tokenizers (model/tokenizer*.c, model/text_fix.c,
# model/unicode.c) and the ti-tokenize tool.
ti_add_test(test_tokenizer SOURCES test_tokenizer.c LABELS cpu LIBS ti_model TIMEOUT 600)

# ti-tokenize end to end: runs the executable on a few inputs and compares its output. The
# committed CLIP merges file is gzip'd: without zlib the tool cannot load it, the test is SKIP.
if(ZLIB_FOUND)
  add_test(NAME test_ti_tokenize
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/test_ti_tokenize.sh $<TARGET_FILE:ti-tokenize>
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(test_ti_tokenize PROPERTIES LABELS cpu)
else()
  ti_skip_test(test_ti_tokenize cpu "built without zlib: cannot read model/vocab/bpe_simple_vocab_16e6.txt.gz")
endif()
