/*
 * api_ui.c - GET /ui: the monitoring page (ui.html, embedded at build time
 * by cmake/embed.cmake into ui_html.h; no build step at run time).
 *
 * The page is public: it holds no data and no secret. It asks for the
 * secret key, keeps it in the tab's sessionStorage and calls the same
 * authenticated API as every other client, with the bearer header.
 */
#include "api_priv.h"

#include "ui_html.h"

int api_ui(struct http_request *req, struct http_response *resp, void *user)
{
	(void)req;
	(void)user;
	http_response_header(resp, "Cache-Control", "no-store");
	http_response_header(resp, "Content-Security-Policy",
			     "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
			     "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
			     "frame-ancestors 'none'");
	http_response_header(resp, "X-Content-Type-Options", "nosniff");
	return http_respond_text(resp, 200, "text/html; charset=utf-8", evs_ui_html);
}
