/*
 * server/main.c — the edgecache process.
 *
 * Start-up order: settings (flags over config file) → TLS certificates (read and checked:
 * a bad one is exit status 2 before anything listens or the store opens) → memory tier → LMDB store
 * (migrations, writer thread; no scan) → proxy state → admin listener → worker
 * threads. The main thread then only waits for SIGTERM/SIGINT (blocked in every
 * other thread) and shuts down in the reverse order: stop accepting, let in-flight
 * responses finish (bounded), stop the admin, flush and close the store.
 *
 * Subcommands: `edgecache migrate --status --data-dir DIR`, `edgecache token ...`,
 * `edgecache check [--quick] --data-dir DIR` (exit 0 sound, 2 damaged, 1 could not check).
 *
 * The composition root: the only file of server/ that knows the admin API. It hands the
 * proxy and the purge module the admin's live settings and PURGE authorization as
 * callbacks whose argument is `admin` (below), which admin_start sets before any worker
 * thread starts and admin_stop clears after they have all stopped.
 *
 * A store that is not sound (storage/store_check.h) ends start-up with exit status 2 and
 * one line on stderr, before anything maps it.
 */
#include <errno.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <pthread.h>
#include "admin-api/admin.h"
#include "admin-api/stats_api.h"
#include "cluster/cluster.h"
#include "server/accesslog.h"
#include "server/stats.h"
#include "server/stats_realtime.h"
#include "server/backend.h"
#include "migrations/mig.h"
#include "server/config.h"
#include "server/frontend.h"
#include "server/proxy.h"
#include "server/purge.h"
#include "server/tls.h"
#include "storage/mem.h"
#include "storage/store.h"
#include "storage/store_check.h"

/* one --data-dir DIR (or --data-dir=DIR) argument at argv[*i]; 1 when it was one */
static int data_dir_arg(int argc, char **argv, int *i, const char **dir)
{
    if (strcmp(argv[*i], "--data-dir") == 0 && *i + 1 < argc) {
        *dir = argv[++*i];
        return 1;
    }
    if (strncmp(argv[*i], "--data-dir=", 11) == 0) {
        *dir = argv[*i] + 11;
        return 1;
    }
    return 0;
}

/*
 * `edgecache check [--quick] --data-dir DIR`: the meta check, then the full tree check
 * (every record read, every object decoded) in a child process; --quick walks the tree
 * without reading values, as a start after an unclean shutdown does. Safe on a store a running
 * server has open (a read transaction sees one consistent snapshot).
 */
static int check_main(int argc, char **argv)
{
    const char *dir = NULL;
    int quick = 0;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (!data_dir_arg(argc, argv, &i, &dir)) {
            fprintf(stderr, "edgecache: check: unknown option '%s' (usage: edgecache check [--quick] --data-dir DIR)\n",
                    argv[i]);
            return 1;
        }
    }
    if (dir == NULL) {
        fprintf(stderr, "edgecache: check: --data-dir: missing value\n");
        return 1;
    }
    char err[1024];
    store_check_meta_t m;
    int rc = store_check_file(dir, 0, &m, err, sizeof(err));
    if (rc == 1) {
        fprintf(stderr, "edgecache: check: no store in %s (no data.mdb)\n", dir);
        return 1;
    }
    if (rc != 0) {
        printf("%s: %s: %s\n", dir, rc == STORE_CHECK_EDAMAGED ? "DAMAGED" : "cannot check", err);
        return rc == STORE_CHECK_EDAMAGED ? 2 : 1;
    }
    printf("%s: meta pages ok: page size %u, last page %llu, transaction %llu\n", dir, m.psize, (unsigned long long)m.last_pg,
           (unsigned long long)m.txnid);
    fflush(stdout);
    store_check_report_t rep;
    rc = store_check_tree(dir, !quick, stdout, &rep, err, sizeof(err));
    if (rc != 0) {
        printf("%s: %s: %s\n", dir, rc == STORE_CHECK_EDAMAGED ? "DAMAGED" : "cannot check", err);
        return rc == STORE_CHECK_EDAMAGED ? 2 : 1;
    }
    printf("%s: sound: %llu databases, %llu records, %llu objects decoded, %llu value bytes read\n", dir,
           (unsigned long long)rep.databases, (unsigned long long)rep.records, (unsigned long long)rep.decoded,
           (unsigned long long)rep.value_bytes);
    return 0;
}

static int migrate_main(int argc, char **argv)
{
    const char *dir = NULL;
    int status = 0, rc;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--status") == 0) {
            status = 1;
        } else if (data_dir_arg(argc, argv, &i, &dir)) {
        } else {
            fprintf(stderr, "edgecache: migrate: unknown option '%s' (usage: edgecache migrate [--status] --data-dir DIR)\n",
                    argv[i]);
            return 2;
        }
    }
    if (dir == NULL) {
        fprintf(stderr, "edgecache: migrate: --data-dir: missing value\n");
        return 2;
    }

    if (status) {
        /* read-only look at the version: never migrates */
        MDB_env *env = NULL;
        unsigned current = 0;
        struct stat st;
        char mdb_path[4200];
        snprintf(mdb_path, sizeof(mdb_path), "%s/data.mdb", dir);
        if (stat(mdb_path, &st) != 0) {
            printf("schema version: none (no store at %s)\nlatest version: %u\n", dir, mig_latest());
            return 0;
        }
        /* LMDB maps what it opens: the checks store_open makes first (the tree walk too
         * after an unclean shutdown, since reading the version reads the tree) */
        char cerr[1024];
        store_state_t state;
        if ((rc = store_check_at_open(dir, 0, &state, cerr, sizeof(cerr))) != 0) {
            fprintf(stderr, "edgecache: migrate: store %s: %s\n", dir, cerr);
            return rc == STORE_CHECK_EDAMAGED ? 2 : 1;
        }
        store_check_at_close(&state, 0);
        if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_maxdbs(env, 16)) != 0 ||
            (rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600)) != 0) {
            fprintf(stderr, "edgecache: migrate: cannot open store in %s: %s\n", dir, mdb_strerror(rc));
            if (env != NULL)
                mdb_env_close(env);
            return 1;
        }
        rc = mig_current_version(env, &current);
        mdb_env_close(env);
        if (rc != 0) {
            fprintf(stderr, "edgecache: migrate: cannot read the schema version: %s\n", mdb_strerror(rc));
            return 1;
        }
        printf("schema version: %u\nlatest version: %u\n%s\n", current, mig_latest(),
               current == mig_latest()  ? "up to date"
               : current > mig_latest() ? "store is NEWER than this binary: refusing to use it"
                                        : "pending migrations run at the next start (or `edgecache migrate --data-dir DIR`)");
        return current > mig_latest() ? 1 : 0;
    }

    /* apply pending migrations now */
    store_t *store = NULL;
    char err[512];
    store_options_t opt = {.dir = dir, .map_size = 0};
    config_t defaults;
    config_defaults(&defaults);
    opt.map_size = defaults.disk_size;
    if ((rc = store_open(&store, &opt, err, sizeof(err))) != 0) {
        fprintf(stderr, "edgecache: migrate: %s\n", err);
        return rc == STORE_EDAMAGED ? 2 : 1;
    }
    store_close(&store);
    printf("schema version: %u (latest)\n", mig_latest());
    return 0;
}

/* the admin's live settings, for every proxied request (proxy_live_settings_fn) */
static int live_settings(void *arg, proxy_live_settings_t *out)
{
    admin_t *admin = *(admin_t **)arg;
    if (admin == NULL)
        return -1;
    admin_settings_t s;
    admin_settings_snapshot(admin, &s);
    out->default_ttl = s.default_ttl;
    out->default_grace = s.default_grace;
    out->max_heuristic_ttl = s.max_heuristic_ttl;
    out->negative_ttl = s.negative_ttl;
    out->cookie_policy_strip = s.cookie_policy_strip;
    out->obey_client_no_cache = s.obey_client_no_cache;
    out->keep_surrogate_headers = s.keep_surrogate_headers;
    return 0;
}

/* who may purge (purge_authorize_or_respond_fn): the admin API's own purges were authorized
 * by its router (token and scope) before they became jobs; a PURGE on the proxy listener
 * needs a purge_select or global token once any token exists */
static int authorize_purge(void *arg, purge_source_t source, h2o_req_t *req)
{
    admin_t *admin = *(admin_t **)arg;
    if (source != PURGE_FROM_PROXY || admin == NULL)
        return 0;
    return admin_authorize_proxy_purge_or_respond(admin, req);
}

int main(int argc, char **argv)
{
    static config_t cfg;
    char err[1024];
    mem_tier_t *mem = NULL;
    store_t *store = NULL;
    admin_t *admin = NULL;
    sigset_t sigs;
    int sig, rc, exit_code = 1;

    if (argc > 1 && strcmp(argv[1], "migrate") == 0)
        return migrate_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "check") == 0)
        return check_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return admin_token_cli(argc - 1, argv + 1);

    config_defaults(&cfg);
    if ((rc = config_parse_args(&cfg, argc, argv, 1, err, sizeof(err))) != 0) {
        if (rc == 1)
            return 0;
        fprintf(stderr, "edgecache: %s\n", err);
        return 2;
    }

    /* block the signals everywhere; the main thread waits for them */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    if (tls_init(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "edgecache: %s\n", err);
        return 2;
    }

    mem = mem_create(cfg.memory_size, 0);
    store_options_t sopt = {.dir = cfg.data_dir,
                            .map_size = cfg.disk_size,
                            .mem = mem,
                            .put_backlog = (size_t)config_put_backlog(&cfg),
                            .space_mode = cfg.disk_reserve == CONFIG_DISK_FREE_SPACE ? STORE_SPACE_FREE
                                                                                     : STORE_SPACE_PREALLOCATE};
    if ((rc = store_open(&store, &sopt, err, sizeof(err))) != 0) {
        fprintf(stderr, "edgecache: --data-dir: %s\n", err);
        mem_destroy(&mem);
        tls_shutdown();
        return rc == STORE_EDAMAGED ? 2 : 1;
    }
    /* the proxy's state and the purge module first: the admin thread uses them (cache keys
     * for URL purges, purge jobs) */
    purge_module_init(store, authorize_purge, &admin);
    if (cfg.cluster_urls[0] != '\0') { /* before any loop can submit a purge: they all go through the stream */
        cluster_options_t copt = {.urls = cfg.cluster_urls,
                                  .node = cfg.node_name,
                                  .retention_s = cfg.cluster_retention_s,
                                  .local_on_unavailable = cfg.cluster_on_unavailable == CONFIG_CLUSTER_LOCAL,
                                  .store = store,
                                  .creds = cfg.cluster_creds,
                                  .nkey_seed = cfg.cluster_nkey,
                                  .tls_ca = cfg.cluster_tls_ca,
                                  .tls_cert = cfg.cluster_tls_cert.cert,
                                  .tls_key = cfg.cluster_tls_cert.key,
                                  .tls_hostname = cfg.cluster_tls_hostname};
        if (cluster_start(&copt, err, sizeof(err)) != 0) {
            fprintf(stderr, "edgecache: %s\n", err);
            exit_code = 2; /* a file named by a --cluster-* setting: a configuration error */
            goto fail;
        }
    }
    if (proxy_init(&cfg, store, mem, live_settings, &admin, err, sizeof(err)) != 0) {
        fprintf(stderr, "edgecache: %s\n", err);
        goto fail;
    }
    if (backend_module_init(&cfg, store, err, sizeof(err)) != 0) {
        fprintf(stderr, "edgecache: %s\n", err);
        goto fail;
    }
    /* before any thread that reads the stats (admin, sampler, metrics listener, workers) starts */
    if (stats_init(&cfg, store, mem, err, sizeof(err)) != 0 ||
        accesslog_open(cfg.access_log, cfg.threads, err, sizeof(err)) != 0) {
        fprintf(stderr, "edgecache: %s\n", err);
        goto fail;
    }
    if (admin_start(&admin, &cfg, store, mem, err, sizeof(err)) != 0) {
        fprintf(stderr, "edgecache: %s\n", err); /* it names the listener's flag, --admin-listen or --admin-tls-listen */
        goto fail;
    }
    if (backend_module_start(err, sizeof(err)) != 0) {
        fprintf(stderr, "edgecache: %s\n", err);
        goto fail;
    }
    if (cfg.node_name[0] != '\0') /* the real-time figures' datacenter key; the host name without one */
        stats_rt_set_node_name(cfg.node_name);
    if (stats_start(err, sizeof(err)) != 0 || admin_metrics_listener_start(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "edgecache: %s\n", err);
        goto fail;
    }
    if (frontend_start(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "edgecache: %s\n", err);
        goto fail;
    }

    char tls_ready[CONFIG_MAX_TLS_LISTEN * 280 + 300] = "";
    for (size_t i = 0, n = 0; i != cfg.num_tls_listen; ++i)
        n += (size_t)snprintf(tls_ready + n, sizeof(tls_ready) - n, "%s%s:%u", i == 0 ? " tls=" : ",", cfg.tls_listen[i].host,
                              (unsigned)frontend_tls_bound_port(i));
    if (cfg.admin_tls_listen.host[0] != '\0')
        snprintf(tls_ready + strlen(tls_ready), sizeof(tls_ready) - strlen(tls_ready), " admin-tls=%s:%u",
                 cfg.admin_tls_listen.host, (unsigned)admin_tls_bound_port(admin));
    fprintf(stderr, "edgecache: ready proxy=%s:%u admin=%s:%u threads=%u data-dir=%s%s\n", cfg.listen.host,
            (unsigned)frontend_bound_port(), cfg.admin_listen.host, (unsigned)admin_bound_port(admin), cfg.threads,
            cfg.data_dir, tls_ready);

    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            sig = SIGTERM;
        if (sig != SIGHUP)
            break;
        accesslog_reopen();
        size_t loaded;
        if (tls_reload(&loaded, err, sizeof(err)) != 0)
            fprintf(stderr, "edgecache: SIGHUP: certificates not reloaded, the old ones keep serving: %s\n", err);
        else if (loaded != 0)
            fprintf(stderr, "edgecache: SIGHUP: %zu certificate%s reloaded\n", loaded, loaded == 1 ? "" : "s");
    }

    fprintf(stderr, "edgecache: %s received, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    cluster_stop(); /* purges still waiting for the stream are answered 503 while the loops run */
    frontend_stop(cfg.shutdown_timeout_ms);
    accesslog_close();
    admin_metrics_listener_stop();
    admin_stop(&admin);
    backend_module_stop();
    stats_stop(); /* after the admin: nothing reads the stats any more; before the store: it writes the last minute */
    store_close(&store);
    mem_destroy(&mem);
    tls_shutdown(); /* every listener thread is gone: no handshake can use a context */
    fprintf(stderr, "edgecache: stopped\n");
    return 0;

fail:
    cluster_stop();
    accesslog_close();
    admin_metrics_listener_stop();
    if (admin != NULL)
        admin_stop(&admin);
    backend_module_stop();
    stats_stop();
    store_close(&store);
    mem_destroy(&mem);
    tls_shutdown();
    return exit_code;
}
