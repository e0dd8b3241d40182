# Engine chat: templates, the output parser (generated text -> guard events),
# stop strings, request sampling fields.
lw_unit_test(test_chat_template unit/test_chat_template.c LIBS lw_engine)
lw_unit_test(test_chatparse unit/test_chatparse.c LIBS lw_engine)
lw_unit_test(test_stop unit/test_stop.c LIBS lw_engine)
lw_unit_test(test_sampling_request unit/test_sampling_request.c LIBS lw_engine m)

lw_fuzz_target(fuzz_chatparse 2000 LIBS lw_engine)
