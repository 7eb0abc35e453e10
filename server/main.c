/*
 * weightbridged: the HTTP daemon that turns uploaded PyTorch .npz exports
 * into Keras weight files.
 *
 * Startup order: settings (defaults, file, environment, flags), umask and
 * signal mask, spool, job queue, listening socket (ours or systemd's),
 * HTTP server (answering /readyz 503), spool recovery, workers, ready.
 * Shutdown runs it backwards: on SIGTERM readyz turns 503 and new jobs
 * are refused, after --drain-delay the listening socket closes, running
 * jobs get --shutdown-grace to finish (then are requeued), waiting
 * clients are answered, and HTTP stops.  Signals are taken synchronously
 * by the main thread with sigtimedwait, so no handler runs in a worker.
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef WB_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "config.h"
#include "handlers.h"
#include "http.h"
#include "jobq.h"
#include "log.h"
#include "metrics.h"
#include "spool.h"

#ifndef WB_VERSION
#define WB_VERSION "0.1.0"
#endif

#define MAIN_HEALTH_TIMEOUT_S	5

enum main_mode {
	MAIN_SERVE,
	MAIN_HELP,
	MAIN_VERSION,
	MAIN_CHECK,
	MAIN_ROUTES,
	MAIN_HEALTH
};

static void
main_usage(FILE *fp)
{
	fprintf(fp, "usage: weightbridged [--config FILE] [--SETTING VALUE ...]\n"
	    "       weightbridged --check-config | --print-routes | "
	    "--healthcheck | --help | --version\n\n"
	    "Converts PyTorch state_dict .npz exports to Keras weight files "
	    "over HTTP.\n\n"
	    "  --config FILE                `key = value` lines (also "
	    "WEIGHTBRIDGED_CONFIG)\n"
	    "  --check-config               check the settings, print them, "
	    "exit\n"
	    "  --print-routes               print the route table, exit\n"
	    "  --healthcheck                GET /livez on the listen address; "
	    "exit 0 if it answers 200\n\n"
	    "Settings (flag, environment variable, default, bounds):\n");
	config_usage(fp);
}

static void
main_notify(const char *state)
{
#ifdef WB_HAVE_SYSTEMD
	if (getenv("NOTIFY_SOCKET") != NULL)
		(void)sd_notify(0, state);
#else
	(void)state;
#endif
}

/*
 * Parse argv into c.  The config file is read first wherever --config
 * appears, so flags always win over it.
 */
static int
main_args(int argc, char **argv, struct config *c, enum main_mode *mode,
    struct wb_err *err)
{
	const char *cfile = getenv("WEIGHTBRIDGED_CONFIG");
	char key[128], origin[160];
	const char *a, *v, *eq;
	int i, rc;

	*mode = MAIN_SERVE;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			cfile = argv[++i];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			cfile = argv[i] + 9;
	}
	if (cfile != NULL && *cfile != '\0' &&
	    (rc = config_load_file(c, cfile, err)) != 0)
		return rc;
	if ((rc = config_load_env(c, err)) != 0)
		return rc;
	for (i = 1; i < argc; i++) {
		a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			*mode = MAIN_HELP;
		else if (strcmp(a, "--version") == 0)
			*mode = MAIN_VERSION;
		else if (strcmp(a, "--check-config") == 0)
			*mode = MAIN_CHECK;
		else if (strcmp(a, "--print-routes") == 0)
			*mode = MAIN_ROUTES;
		else if (strcmp(a, "--healthcheck") == 0)
			*mode = MAIN_HEALTH;
		else if (strcmp(a, "--config") == 0)
			i++;
		else if (strncmp(a, "--config=", 9) == 0)
			continue;
		else if (strncmp(a, "--", 2) == 0) {
			a += 2;
			if ((eq = strchr(a, '=')) != NULL) {
				snprintf(key, sizeof(key), "%.*s",
				    (int)(eq - a), a);
				v = eq + 1;
			} else {
				snprintf(key, sizeof(key), "%s", a);
				if (!config_known(key) || i + 1 >= argc)
					return wb_err_set(err, WB_E_USAGE,
					    config_known(key) ?
					    "--%s needs a value" :
					    "unknown option --%s", key);
				v = argv[++i];
			}
			snprintf(origin, sizeof(origin), "--%s", key);
			if ((rc = config_set(c, key, v, origin, err)) != 0)
				return rc;
		} else
			return wb_err_set(err, WB_E_USAGE,
			    "unexpected argument \"%s\"", a);
	}
	return 0;
}

/* Checks beyond each value's bounds: things that need the file system. */
static int
main_check(const struct config *c, struct wb_err *err)
{
	struct srv tmp;
	char host[CONFIG_STR_MAX];
	int rc;

	if (strrchr(c->listen, ':') == NULL)
		return wb_err_set(err, WB_E_USAGE,
		    "listen: \"%s\" is not host:port", c->listen);
	snprintf(host, sizeof(host), "%s", c->listen);
	if ((c->tls_cert[0] != '\0') != (c->tls_key[0] != '\0'))
		return wb_err_set(err, WB_E_USAGE,
		    "tls-cert and tls-key go together");
	if (c->tls_cert[0] != '\0' && (access(c->tls_cert, R_OK) != 0 ||
	    access(c->tls_key, R_OK) != 0))
		return wb_err_set(err, WB_E_USAGE,
		    "tls-cert or tls-key is not readable");
	if (c->tokens_file[0] != '\0') {
		memset(&tmp, 0, sizeof(tmp));
		rc = http_tokens_load(&tmp, c->tokens_file, err);
		http_tokens_free(&tmp);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int
main_write_port(const char *path, unsigned port, struct wb_err *err)
{
	char dir[CONFIG_STR_MAX], buf[16];
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (dir[0] == '\0')
		snprintf(dir, sizeof(dir), "/");
	snprintf(buf, sizeof(buf), "%u\n", port);
	return spool_write_atomic(dir, slash != NULL ? slash + 1 : path, buf,
	    strlen(buf), err);
}

/* --healthcheck: one GET /livez over loopback-or-configured address. */
static int
main_healthcheck(const struct config *c)
{
	char host[CONFIG_STR_MAX], port[16], resp[64];
	const char *colon;
	struct addrinfo hints, *ai = NULL;
	struct timeval tv = { MAIN_HEALTH_TIMEOUT_S, 0 };
	FILE *pf;
	int s = -1, ok = 0;
	size_t hl;
	ssize_t n;
	static const char req[] = "GET /livez HTTP/1.0\r\nHost: localhost\r\n"
	    "\r\n";

	if ((colon = strrchr(c->listen, ':')) == NULL)
		return 1;
	hl = (size_t)(colon - c->listen);
	if (c->listen[0] == '[' && hl >= 2)
		snprintf(host, sizeof(host), "%.*s", (int)(hl - 2),
		    c->listen + 1);
	else
		snprintf(host, sizeof(host), "%.*s", (int)hl, c->listen);
	if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	else if (strcmp(host, "::") == 0)
		snprintf(host, sizeof(host), "::1");
	snprintf(port, sizeof(port), "%s", colon + 1);
	if (strcmp(port, "0") == 0 && c->port_file[0] != '\0' &&
	    (pf = fopen(c->port_file, "r")) != NULL) {
		if (fgets(port, sizeof(port), pf) == NULL)
			port[0] = '\0';
		port[strcspn(port, "\r\n")] = '\0';
		fclose(pf);
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		goto out;
	if ((s = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		goto out;
	(void)setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(s, ai->ai_addr, ai->ai_addrlen) == -1 ||
	    write(s, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1))
		goto out;
	if ((n = read(s, resp, sizeof(resp) - 1)) <= 0)
		goto out;
	resp[n] = '\0';
	ok = strncmp(resp, "HTTP/1.", 7) == 0 && strncmp(resp + 8, " 200", 4) == 0;
out:
	if (s != -1)
		close(s);
	if (ai != NULL)
		freeaddrinfo(ai);
	return ok ? 0 : 1;
}

/* The listening socket: systemd's if socket-activated, else our own. */
static int
main_listen(struct srv *s, unsigned *port, struct wb_err *err)
{
#ifdef WB_HAVE_SYSTEMD
	int n = sd_listen_fds(1);

	if (n > 1)
		return wb_err_set(err, WB_E_USAGE,
		    "systemd passed %d sockets; expected one", n);
	if (n == 1) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		s->listen_fd = SD_LISTEN_FDS_START;
		*port = 0;
		if (getsockname(s->listen_fd, (struct sockaddr *)&ss, &sl) == 0)
			*port = ntohs(ss.ss_family == AF_INET6 ?
			    ((struct sockaddr_in6 *)&ss)->sin6_port :
			    ((struct sockaddr_in *)&ss)->sin_port);
		log_msg(LOG_L_INFO, "using the socket passed by systemd");
		return 0;
	}
#endif
	return http_listen(s->cfg->listen, &s->listen_fd, port, err);
}

static int
main_serve(struct config *c)
{
	struct srv s;
	struct jobq_conf jc;
	struct wb_err err;
	sigset_t set;
	siginfo_t si;
	struct timespec tick = { 1, 0 };
	unsigned port = 0;
	size_t recovered = 0;
	char status[128];
	long ncpu;
	int rc = 1, sig;
	struct timespec dd;

	wb_err_clear(&err);
	memset(&s, 0, sizeof(s));
	s.cfg = c;
	s.listen_fd = -1;
	s.routes = handlers_routes;
	s.nroutes = handlers_nroutes;
	atomic_store(&s.ready, 0);
	umask(077);
	/* Signals are taken by sigtimedwait below, in this thread only. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	metrics_init(handlers_route_names, handlers_nroutes);

	npz_limits_default(&s.limits);
	s.limits.max_members = c->max_members;
	s.limits.max_tensor_bytes = c->max_tensor_bytes;
	s.limits.max_total_bytes = c->max_total_bytes;
	s.limits.max_ratio = c->max_ratio;
	if (c->tokens_file[0] != '\0' &&
	    http_tokens_load(&s, c->tokens_file, &err) != 0)
		goto out;
	if (spool_open(c->spool, &s.spool, &err) != 0)
		goto out;
	memset(&jc, 0, sizeof(jc));
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	jc.workers = c->workers != 0 ? (unsigned)c->workers :
	    (unsigned)(ncpu > 0 ? ncpu : 1);
	jc.queue_size = (size_t)c->queue_size;
	jc.ttl_ms = c->ttl * 1000;
	jc.reap_interval_ms = c->reap_interval * 1000;
	jc.limits = s.limits;
	if (jobq_new(&jc, s.spool, &s.jobq, &err) != 0)
		goto out;
	if (main_listen(&s, &port, &err) != 0)
		goto out;
	if (http_start(&s, &err) != 0)
		goto out;
	log_kv(LOG_L_INFO, "daemon", "listening", "listen", c->listen,
	    "port", (snprintf(status, sizeof(status), "%u", port), status),
	    "tls", s.tls ? "yes" : "no", NULL);
	if (c->port_file[0] != '\0' &&
	    main_write_port(c->port_file, port, &err) != 0)
		goto out;
	main_notify("STATUS=recovering the spool");
	if (jobq_recover(s.jobq, &recovered, &err) != 0 ||
	    jobq_start(s.jobq, &err) != 0)
		goto out;
	log_kv(LOG_L_INFO, "daemon", "ready", "spool", c->spool, "jobs",
	    (snprintf(status, sizeof(status), "%zu", recovered), status),
	    "workers", (snprintf(status + 64, 64, "%u", jc.workers),
	    status + 64), NULL);
	atomic_store(&s.ready, 1);
	snprintf(status, sizeof(status), "READY=1\nSTATUS=serving on port %u, "
	    "%u workers", port, jc.workers);
	main_notify(status);

	for (;;) {
		sig = sigtimedwait(&set, &si, &tick);
		if (sig == SIGHUP) {
			wb_err_clear(&err);
			if (c->tokens_file[0] == '\0')
				log_msg(LOG_L_INFO, "SIGHUP: no tokens file "
				    "configured, nothing to reload");
			else if (http_tokens_load(&s, c->tokens_file, &err) != 0)
				log_msg(LOG_L_ERR, "SIGHUP: keeping the old "
				    "tokens: %s", err.msg);
			else
				log_msg(LOG_L_INFO, "SIGHUP: tokens reloaded");
			main_notify("RELOADING=0\nREADY=1");
			continue;
		}
		if (sig == SIGTERM || sig == SIGINT)
			break;
	}
	log_msg(LOG_L_INFO, "shutting down (%s)", sig == SIGTERM ? "SIGTERM" :
	    "SIGINT");
	main_notify("STOPPING=1\nSTATUS=draining");
	atomic_store(&s.ready, 0);
	jobq_drain(s.jobq);
	if (c->drain_delay > 0) {
		dd.tv_sec = (time_t)(c->drain_delay / 1000);
		dd.tv_nsec = (long)(c->drain_delay % 1000) * 1000000;
		while (nanosleep(&dd, &dd) == -1 && errno == EINTR)
			;
	}
	http_quiesce(&s);
	jobq_stop(s.jobq, c->shutdown_grace * 1000);
	/* Let resumed waiters get their answers out. */
	dd.tv_sec = 0;
	dd.tv_nsec = 200 * 1000000L;
	nanosleep(&dd, NULL);
	rc = 0;
out:
	if (rc != 0)
		log_kv(LOG_L_ERR, "daemon", err.msg, "code",
		    wb_err_name(err.code), NULL);
	http_stop(&s);
	if (s.listen_fd != -1)
		close(s.listen_fd);
	jobq_free(s.jobq);
	spool_close(s.spool);
	http_tokens_free(&s);
	if (rc == 0)
		log_msg(LOG_L_INFO, "stopped");
	return rc;
}

int
main(int argc, char **argv)
{
	struct config c;
	struct wb_err err;
	enum main_mode mode;

	log_init();
	wb_err_clear(&err);
	config_defaults(&c);
	if (main_args(argc, argv, &c, &mode, &err) != 0) {
		fprintf(stderr, "weightbridged: %s\n", err.msg);
		fprintf(stderr, "Try 'weightbridged --help'.\n");
		return 2;
	}
	switch (mode) {
	case MAIN_HELP:
		main_usage(stdout);
		return 0;
	case MAIN_VERSION:
		printf("weightbridged %s\n", WB_VERSION);
		return 0;
	case MAIN_ROUTES:
		route_print(handlers_routes, handlers_nroutes, stdout);
		return 0;
	case MAIN_HEALTH:
		return main_healthcheck(&c);
	case MAIN_CHECK:
		if (main_check(&c, &err) != 0) {
			fprintf(stderr, "weightbridged: %s\n", err.msg);
			return 2;
		}
		config_dump(&c, stdout);
		return 0;
	default:
		return main_serve(&c);
	}
}
