// Number parsing and provenance for the evaluation commands (see pl_eval_cli.h).
#include "pl_eval_cli.h"

#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_cli.h"
#include "pl_clock.h"
#include "pl_digest.h"

int pl_eval_parse_fractions(const char *s, double *out, int max) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", s);
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        double v;
        if (n >= max || !pl_cli_parse_double(tok, DBL_MIN, 1.0, &v)) return -1;
        out[n++] = v;
    }
    return n > 0 ? n : -1;
}

void pl_eval_add_provenance(json_t *config, const char *input) {
    char t[64];
    json_object_set_new(config, "created", json_string(pl_clock_iso_utc(t, sizeof t)));
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) == 0) json_object_set_new(config, "host", json_string(host));
    char hex[65];
    if (input && pl_sha256_file(input, hex) == PL_OK) json_object_set_new(config, "input_sha256", json_string(hex));
}
