/*
 * The config table: defaults, bounds, sizes, the file reader (comments,
 * errors naming file:line), the environment, and precedence.
 */
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "t.h"

int
main(void)
{
	struct config c;
	struct wb_err err;
	uint64_t v;
	char path[] = "/tmp/wbcfgXXXXXX";
	FILE *fp;
	int fd;

	unsetenv("STATE_DIRECTORY");
	config_defaults(&c);
	CHECK_STR(c.listen, "127.0.0.1:8080");
	CHECK_STR(c.spool, "./var");
	CHECK(c.queue_size == 64);
	CHECK(c.upload_limit == 2ULL << 30);
	CHECK(c.spec_limit == 1ULL << 20);
	CHECK(c.conn_timeout > 0 && c.conn_limit > 0);

	setenv("STATE_DIRECTORY", "/var/lib/wb:/other", 1);
	config_defaults(&c);
	CHECK_STR(c.spool, "/var/lib/wb");
	unsetenv("STATE_DIRECTORY");

	CHECK(config_parse_size("512", &v) == 0 && v == 512);
	CHECK(config_parse_size("4K", &v) == 0 && v == 4096);
	CHECK(config_parse_size("2G", &v) == 0 && v == 2ULL << 30);
	CHECK(config_parse_size("3MiB", &v) == 0 && v == 3ULL << 20);
	CHECK(config_parse_size("1X", &v) != 0);
	CHECK(config_parse_size("-1", &v) != 0);
	CHECK(config_parse_size("99999999999999999999", &v) != 0);
	CHECK(config_parse_size("20000000000T", &v) != 0);

	wb_err_clear(&err);
	CHECK(config_set(&c, "queue-size", "0", "--queue-size", &err) ==
	    WB_E_USAGE);
	CHECK(CONTAINS(err.msg, "--queue-size"));
	wb_err_clear(&err);
	CHECK(config_set(&c, "queue-size", "12x", "t", &err) == WB_E_USAGE);
	wb_err_clear(&err);
	CHECK(config_set(&c, "nope", "1", "t", &err) == WB_E_USAGE);
	CHECK(CONTAINS(err.msg, "unknown setting"));
	wb_err_clear(&err);
	CHECK(config_set(&c, "upload-limit", "16M", "t", &err) == 0);
	CHECK(c.upload_limit == 16ULL << 20);

	CHECK((fd = mkstemp(path)) != -1);
	fp = fdopen(fd, "w");
	fprintf(fp, "# a comment\n\n  workers = 3 \nspool=/srv/x\n");
	fclose(fp);
	config_defaults(&c);
	wb_err_clear(&err);
	CHECK(config_load_file(&c, path, &err) == 0);
	CHECK(c.workers == 3);
	CHECK_STR(c.spool, "/srv/x");

	/* The environment overrides the file. */
	setenv("WEIGHTBRIDGED_WORKERS", "5", 1);
	CHECK(config_load_env(&c, &err) == 0);
	CHECK(c.workers == 5);
	setenv("WEIGHTBRIDGED_WORKERS", "999", 1);
	wb_err_clear(&err);
	CHECK(config_load_env(&c, &err) == WB_E_USAGE);
	CHECK(CONTAINS(err.msg, "WEIGHTBRIDGED_WORKERS"));
	unsetenv("WEIGHTBRIDGED_WORKERS");

	fp = fopen(path, "w");
	fprintf(fp, "workers = 1\nbogus line\n");
	fclose(fp);
	wb_err_clear(&err);
	CHECK(config_load_file(&c, path, &err) == WB_E_USAGE);
	CHECK(CONTAINS(err.msg, ":2"));
	fp = fopen(path, "w");
	fprintf(fp, "ttl = 0\n");
	fclose(fp);
	wb_err_clear(&err);
	CHECK(config_load_file(&c, path, &err) == WB_E_USAGE);
	CHECK(CONTAINS(err.msg, "outside"));
	unlink(path);
	wb_err_clear(&err);
	CHECK(config_load_file(&c, "/nonexistent/wb.conf", &err) == WB_E_USAGE);
	return t_done("test_server_config");
}
