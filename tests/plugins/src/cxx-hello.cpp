// cxx-hello: an event script in C++ (issue 14). It uses the standard
// library freely; EVS_PLUGIN and on_event need nothing more than the header
// for their C linkage. It logs its event, reads the connection through the
// host and records a metadata key, so a test can see it ran.
#include <evscript/sdk.h>

#include <string>
#include <vector>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

namespace {

std::string describe(const evs_event *event)
{
	std::vector<std::string> parts{event->name, event->provider_config_key, event->connection_id};
	std::string out;

	for (const auto &p : parts)
		out += (out.empty() ? "" : " ") + p;
	return out;
}

} // namespace

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	try {
		std::string line = "c++ " + describe(event);

		host->log(ctx, EVS_LOG_INFO, "%s", line.c_str());
		return host->set_metadata(ctx, "{\"language\":\"c++\"}") == EVS_OK ? 0 : 1;
	} catch (...) {
		host->set_error(ctx, "out of memory");
		return 1;
	}
}
