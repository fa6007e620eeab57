/* forker: leaves a child behind (named evs-forker-kid, sleeping 60 s) and
 * succeeds: the host must kill and reap it. The pid it logs is the child's
 * in the executor's PID namespace, so tests find the child by its name. */
#include <evscript/sdk.h>
#include <sys/prctl.h>
#include <unistd.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	pid_t pid = fork();

	(void)event;
	if (pid == 0) {
		prctl(PR_SET_NAME, "evs-forker-kid");
		sleep(60);
		_exit(0);
	}
	host->log(ctx, EVS_LOG_INFO, "left child %d behind", (int)pid);
	return pid > 0 ? 0 : 1;
}
