/*
 * Pure helpers of the jobs handler and the reply module: Range parsing,
 * ETag matching, download names, spec parsing with line/column and depth
 * cap, base64url, problem replies for conversion errors.
 */
#include <stdlib.h>

#include "handlers.h"
#include "http.h"
#include "reply.h"
#include "t.h"

int
main(void)
{
	uint64_t a, b;
	char stem[JOBQ_FILENAME_MAX], det[256], *dec;
	int line, col;
	size_t n;
	json_t *j;
	struct reply *rp;
	struct wb_err err;

	CHECK(jobs_parse_range("bytes=0-9", 100, &a, &b) == 0 && a == 0 &&
	    b == 9);
	CHECK(jobs_parse_range("bytes=90-", 100, &a, &b) == 0 && a == 90 &&
	    b == 99);
	CHECK(jobs_parse_range("bytes=-10", 100, &a, &b) == 0 && a == 90 &&
	    b == 99);
	CHECK(jobs_parse_range("bytes=-1000", 100, &a, &b) == 0 && a == 0);
	CHECK(jobs_parse_range("bytes=50-5000", 100, &a, &b) == 0 && b == 99);
	CHECK(jobs_parse_range("bytes=100-", 100, &a, &b) == -1);
	CHECK(jobs_parse_range("bytes=-0", 100, &a, &b) == -1);
	CHECK(jobs_parse_range("bytes=0-1,5-6", 100, &a, &b) == 1);
	CHECK(jobs_parse_range("items=0-1", 100, &a, &b) == 1);
	CHECK(jobs_parse_range("bytes=9-1", 100, &a, &b) == 1);
	CHECK(jobs_parse_range(NULL, 100, &a, &b) == 1);

	CHECK(jobs_etag_match("\"abc\"", "\"abc\""));
	CHECK(jobs_etag_match("\"x\", W/\"abc\"", "\"abc\""));
	CHECK(jobs_etag_match("*", "\"abc\""));
	CHECK(!jobs_etag_match("\"abcd\"", "\"abc\""));

	jobs_filename_stem("model.npz", stem, sizeof(stem));
	CHECK_STR(stem, "model");
	jobs_filename_stem("C:\\x\\my model.npz", stem, sizeof(stem));
	CHECK_STR(stem, "my_model");
	jobs_filename_stem("", stem, sizeof(stem));
	CHECK_STR(stem, "weights");
	jobs_filename_stem("../..", stem, sizeof(stem));
	CHECK_STR(stem, "weights");
	jobs_filename_stem("a\"b;c.npz", stem, sizeof(stem));
	CHECK_STR(stem, "a_b_c");

	j = http_spec_parse("{\n \"a\": [1,\n 2,]\n}", 17, det, sizeof(det),
	    &line, &col);
	CHECK(j == NULL && line == 3);
	CHECK(CONTAINS(det, "line 3"));
	j = http_spec_parse("[1]", 3, det, sizeof(det), &line, &col);
	CHECK(j == NULL && CONTAINS(det, "object"));
	j = http_spec_parse("{\"a\":1,\"a\":2}", 13, det, sizeof(det), &line,
	    &col);
	CHECK(j == NULL);
	{
		char deep[300];

		memset(deep, '[', sizeof(deep));
		deep[0] = '{';
		j = http_spec_parse(deep, sizeof(deep), det, sizeof(det),
		    &line, &col);
		CHECK(j == NULL && CONTAINS(det, "deeper"));
	}
	j = http_spec_parse("{\"s\":\"[[[[\"}", 12, det, sizeof(det), &line,
	    &col);
	CHECK(j != NULL);
	json_decref(j);

	dec = http_b64url_decode("eyJhIjoxfQ", &n);
	CHECK(dec != NULL && n == 7);
	CHECK_STR(dec, "{\"a\":1}");
	free(dec);
	CHECK(http_b64url_decode("e$", &n) == NULL);

	wb_err_clear(&err);
	wb_err_set(&err, WB_E_MAPPING, "layer fc: weight missing");
	rp = reply_problem_err(&err, "abc");
	CHECK(reply_status(rp) == 422);
	CHECK_STR(reply_get_header(rp, "Content-Type"),
	    "application/problem+json");
	CHECK_STR(json_string_value(json_object_get(reply_get_json(rp),
	    "type")), "https://weightbridge.dev/problems/mapping-failed");
	CHECK_STR(json_string_value(json_object_get(reply_get_json(rp),
	    "job_id")), "abc");
	reply_free(rp);
	CHECK(reply_status_for(WB_E_IO) == 500);
	CHECK(reply_status_for(WB_E_NOTFOUND) == 404);
	return t_done("test_server_jobs");
}
