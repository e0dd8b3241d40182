# Engine chat: templates, the output parser (generated text -> guard events),
# stop strings, request sampling fields.
lw_unit_test(test_chat_template unit/test_chat_template.c LIBS lw_engine)
