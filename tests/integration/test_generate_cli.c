/* `loopwarden generate` on a model file truncated while it runs (issue 11
 * defect 10): before the fix the process died of SIGBUS; now it exits 2 with
 * one message naming the file and what happened. Runs the real binary.
 *
 * No timing: the child's stdout is a pipe shrunk to 4096 bytes and the
 * prompt (which generate echoes before evaluating it) is longer, so the
 * child is blocked, model loaded and prompt not yet evaluated, when the pipe
 * holds 4096 bytes; the file is truncated then, and only then is the pipe
 * drained. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#include "harness.h"

#define LW LW_BINARY_DIR "/loopwarden"
#define STORIES LW_SHARED_DIR "/models/stories260K.gguf"
#define WAIT_MS 30000
#define PIPE_BYTES 4096

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void copy_file(const char *from, const char *to)
{
	size_t n;
	char *buf = hs_read_file(from, &n);
	assert_non_null(buf);
	FILE *f = fopen(to, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
	free(buf);
}

static void test_defect_11_10_generate_on_truncated_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/lw_gencli_XXXXXX", model[128], log[128], cmd[160];
	static char prompt[6001];
	int fds[2], st, avail = 0;

	assert_non_null(mkdtemp(dir));
	snprintf(model, sizeof(model), "%s/model.gguf", dir);
	snprintf(log, sizeof(log), "%s/stderr.log", dir);
	copy_file(STORIES, model);
	for (size_t i = 0; i < sizeof(prompt) - 1; i++)
		prompt[i] = "Once upon a time there was a little girl. "[i % 42];
	prompt[sizeof(prompt) - 1] = '\0';

	assert_int_equal(pipe(fds), 0);
	assert_true(fcntl(fds[1], F_SETPIPE_SZ, PIPE_BYTES) >= PIPE_BYTES);
	assert_true(fcntl(fds[1], F_GETPIPE_SZ) == PIPE_BYTES);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int err = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fds[1], 1);
		if (err >= 0)
			dup2(err, 2);
		close(fds[0]);
		execl(LW, LW, "generate", "-m", model, "-p", prompt, "-n", "8", "--temp", "0", "-c",
		      "4096", "-t", "1", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);

	/* the pipe full: the child is blocked echoing the prompt */
	for (long end = now_ms() + WAIT_MS; avail < PIPE_BYTES && now_ms() < end; usleep(5000)) {
		assert_int_equal(ioctl(fds[0], FIONREAD, &avail), 0);
		if (waitpid(pid, &st, WNOHANG) == pid) {
			char *e = hs_read_file(log, NULL);
			fail_msg("generate ended before its prompt was echoed: %s", e ? e : "");
		}
	}
	assert_int_equal(avail, PIPE_BYTES);
	assert_int_equal(truncate(model, 4096), 0);

	/* drain until the child closes its end */
	char buf[8192];
	for (long end = now_ms() + WAIT_MS; now_ms() < end;) {
		struct pollfd p = {fds[0], POLLIN, 0};
		if (poll(&p, 1, 100) < 0)
			break;
		if (p.revents && read(fds[0], buf, sizeof(buf)) <= 0)
			break;
	}
	close(fds[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	char *e = hs_read_file(log, NULL);
	assert_non_null(e);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 2)
		fail_msg("expected exit status 2, got %s %d: %s", WIFSIGNALED(st) ? "signal" : "exit",
		         WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), e);
	char want[300];
	snprintf(want, sizeof(want), "loopwarden generate: model file %s changed on disk "
	         "(truncated from 1185376 to 4096 bytes) while in use", model);
	if (!strstr(e, want) || !strstr(e, "reload it"))
		fail_msg("stderr lacks '%s': %s", want, e);
	free(e);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defect_11_10_generate_on_truncated_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
