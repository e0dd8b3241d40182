/* The `loopwarden generate` command: load a GGUF model, run a prompt, print
 * the continuation (and with --ids the token ids, with --bench tokens/s). */
#ifndef LW_ENGINE_GENERATE_H
#define LW_ENGINE_GENERATE_H

/* <argv>[0] is "generate". Returns the process exit status. */
int eng_generate_main(int argc, char **argv);

#endif
