/*
 * admin-api/dashboard.c — GET /dashboard on the admin listener: the live dashboard, one
 * page and its script and style (GET /dashboard.js, /dashboard.css), all served from the
 * binary. Their sources are admin-api/dashboard.{html,js,css}; the Makefile turns them into
 * C arrays (scripts/embed-assets -> BUILD/gen/dashboard_assets.h) so that a node needs no
 * file, CDN or network to show its own figures.
 *
 * The page loads without a token: it holds no figure. Its script asks for a token, keeps it
 * in the tab's sessionStorage and sends it as Fastly-Key to the stats endpoints, which check
 * it as for any client (401 / 403 answers are shown in the page).
 *
 * Invariant: every answer carries a Content-Security-Policy that allows no source but this
 * listener (script and style only as these two files, never inline: an injected tag runs
 * nothing), nosniff and no-store. The only bytes not from the binary are the service id,
 * from the configuration, written into the page HTML-escaped.
 *
 * Threads: any admin thread; nothing here is shared or changes after start.
 */
#include <assert.h>
#include <string.h>
#include "admin-api/admin_ext.h"
#include "admin-api/admin_int.h"
#include "dashboard_assets.h" /* generated: dashboard_html, dashboard_js, dashboard_css and their _len */

#define SERVICE_ID_MARK "{{SERVICE_ID}}"

static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src data:; "
                          "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

typedef enum { ASSET_NONE, ASSET_PAGE, ASSET_SCRIPT, ASSET_STYLE } asset_t;

static asset_t asset_of(const char *path, size_t len)
{
    if (h2o_memis(path, len, H2O_STRLIT("/dashboard")) || h2o_memis(path, len, H2O_STRLIT("/dashboard/")))
        return ASSET_PAGE;
    if (h2o_memis(path, len, H2O_STRLIT("/dashboard.js")))
        return ASSET_SCRIPT;
    if (h2o_memis(path, len, H2O_STRLIT("/dashboard.css")))
        return ASSET_STYLE;
    return ASSET_NONE;
}

static int dashboard_match(const char *path, size_t len, unsigned *methods)
{
    *methods = ADMIN_M_GET; /* and HEAD */
    return asset_of(path, len) != ASSET_NONE;
}

static unsigned dashboard_scopes(const char *path, size_t len, unsigned method)
{
    (void)path, (void)len, (void)method;
    return 0; /* the page and its code hold no data; the data endpoints check the token */
}

/* the page with its service-id mark replaced by the configured id, HTML-escaped, in req's pool */
static h2o_iovec_t page_with_service_id(h2o_req_t *req, const char *sid)
{
    const char *page = (const char *)dashboard_html;
    const char *mark = memmem(page, dashboard_html_len, SERVICE_ID_MARK, sizeof(SERVICE_ID_MARK) - 1);
    size_t sid_len = strlen(sid);
    assert(mark != NULL); /* the page's source carries it: a build without it is our bug */
    h2o_iovec_t out = h2o_iovec_init(h2o_mem_alloc_pool(&req->pool, dashboard_html_len + 6 * sid_len), 0);
    size_t head = (size_t)(mark - page);
    memcpy(out.base, page, head);
    out.len = head;
    for (size_t i = 0; i < sid_len; i++) {
        const char *rep = NULL;
        switch (sid[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: out.base[out.len++] = sid[i]; continue;
        }
        memcpy(out.base + out.len, rep, strlen(rep));
        out.len += strlen(rep);
    }
    size_t tail = dashboard_html_len - head - (sizeof(SERVICE_ID_MARK) - 1);
    memcpy(out.base + out.len, mark + sizeof(SERVICE_ID_MARK) - 1, tail);
    out.len += tail;
    return out;
}

static void add_header(h2o_req_t *req, const char *name, size_t name_len, const char *value, size_t value_len)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, name_len, 1, NULL, value, value_len);
}

static void dashboard_handle(admin_t *admin, h2o_req_t *req, unsigned method, const char *path, size_t len)
{
    h2o_iovec_t body;
    const char *type;

    (void)method;
    switch (asset_of(path, len)) {
    case ASSET_PAGE:
        body = page_with_service_id(req, admin->cfg->service_id);
        type = "text/html; charset=utf-8";
        break;
    case ASSET_SCRIPT:
        body = h2o_iovec_init(dashboard_js, dashboard_js_len);
        type = "text/javascript; charset=utf-8";
        break;
    case ASSET_STYLE:
        body = h2o_iovec_init(dashboard_css, dashboard_css_len);
        type = "text/css; charset=utf-8";
        break;
    default: admin_send_json_error(req, 404, "Not found", "no such endpoint"); return;
    }
    req->res.status = 200;
    req->res.reason = "OK";
    add_header(req, H2O_STRLIT("content-type"), type, strlen(type));
    add_header(req, H2O_STRLIT("content-security-policy"), csp, sizeof(csp) - 1);
    add_header(req, H2O_STRLIT("x-content-type-options"), H2O_STRLIT("nosniff"));
    add_header(req, H2O_STRLIT("cache-control"), H2O_STRLIT("no-store"));
    add_header(req, H2O_STRLIT("referrer-policy"), H2O_STRLIT("no-referrer"));
    add_header(req, H2O_STRLIT("x-frame-options"), H2O_STRLIT("DENY"));
    req->res.content_length = body.len;
    h2o_send_inline(req, body.base, body.len);
}

const admin_ext_route_t admin_dashboard_route = {"dashboard", dashboard_match, dashboard_scopes, dashboard_handle};
