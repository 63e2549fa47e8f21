/* run_record.c — RUN/run.json (see run_record.h). */
#include "clue/run_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clue/json.h"
#include "clue/strbuf.h"

void clue_run_record_previous(const char *dir, clue_run_record *r) {
  char path[CLUE_PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/run.json", dir);
  size_t len = 0;
  char *text = clue_read_file(path, &len);
  clue_json *v = NULL;
  clue_err err;
  r->starts = 0;
  r->n_resumed = 0;
  if (text && clue_json_parse(text, len, &v, &err) == CLUE_OK) {
    double s = clue_json_num(v, "starts", 0);
    r->starts = s > 0 && s < 1e9 ? (int)s : 0;
    const clue_json *res = clue_json_get(v, "resumed_at");
    for (int i = 0; res && res->type == CLUE_JSON_ARRAY && i < res->n; i++)
      if (r->n_resumed < CLUE_RUN_RESUMES_MAX)
        r->resumed_at[r->n_resumed++] = (int64_t)clue_json_num(res->items[i], NULL, 0);
  }
  clue_json_free(v);
  free(text);
}

static void put_int(clue_strbuf *b, const char *key, int64_t v, const char *sep) {
  clue_sb_printf(b, "  \"%s\": %lld%s\n", key, (long long)v, sep);
}

static void put_data(clue_strbuf *b, const clue_config *cfg, const clue_run_record *r) {
  clue_sb_printf(b, "  \"data\": {\"cells\": %lld, \"cells_train\": %lld, \"cells_val\": %lld, "
                    "\"cells_all_modalities\": %lld, \"modalities\": [",
                 (long long)r->cells, (long long)r->cells_train, (long long)r->cells_val,
                 (long long)r->cells_all_mods);
  for (int k = 0; k < cfg->n_mod; k++) {
    const clue_run_mod *m = &r->mod[k];
    clue_sb_printf(b, "%s\n    {\"name\": ", k ? "," : "");
    clue_sb_json_string(b, cfg->mod[k].name);
    clue_sb_printf(b, ", \"file\": ");
    clue_sb_json_string(b, cfg->mod[k].file[0] ? cfg->mod[k].file : cfg->h5mu_file);
    clue_sb_printf(b, ", \"likelihood\": \"%s\", \"cells\": %lld, \"features\": %lld, "
                      "\"decoded\": %lld, \"components\": %lld}",
                   clue_likelihood_name(cfg->mod[k].likelihood), (long long)m->cells,
                   (long long)m->features, (long long)m->decoded, (long long)m->components);
  }
  clue_sb_printf(b, "]},\n");
}

int clue_run_record_write(const char *dir, const clue_config *cfg, const clue_run_record *r,
                          clue_err *err) {
  clue_strbuf b = {0};
  time_t now = time(NULL);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  clue_sb_printf(&b, "{\n  \"clue_version\": \"%s\",\n  \"git_rev\": \"%s\",\n", CLUE_VERSION,
                 CLUE_GIT_REV);
  clue_sb_printf(&b, "  \"updated\": \"%s\",\n  \"status\": \"%s\",\n  \"reason\": ", stamp,
                 r->status);
  clue_sb_json_string(&b, r->reason);
  clue_sb_printf(&b, ",\n");
  put_int(&b, "starts", r->starts, ",");
  clue_sb_printf(&b, "  \"resumed_at\": [");
  for (int i = 0; i < r->n_resumed; i++)
    clue_sb_printf(&b, "%s%lld", i ? ", " : "", (long long)r->resumed_at[i]);
  clue_sb_printf(&b, "],\n");
  put_int(&b, "ranks", r->ranks, ",");
  put_int(&b, "threads_per_rank", r->threads, ",");
  clue_sb_printf(&b, "  \"blas\": ");
  clue_sb_json_string(&b, r->blas);
  clue_sb_printf(&b, ",\n  \"layout\": ");
  clue_sb_json_string(&b, r->layout);
  clue_sb_printf(&b, ",\n");
  put_data(&b, cfg, r);
  put_int(&b, "batch_size", cfg->batch_size, ",");
  put_int(&b, "steps_per_epoch", r->steps_per_epoch, ",");
  put_int(&b, "max_epochs", r->max_epochs, ",");
  put_int(&b, "max_steps", cfg->max_steps, ",");
  put_int(&b, "align_burnin", r->align_burnin, ",");
  put_int(&b, "patience", r->patience, ",");
  put_int(&b, "epoch", r->epoch, ",");
  put_int(&b, "step", r->step, ",");
  put_int(&b, "best_epoch", r->best_epoch, ",");
  clue_sb_printf(&b, "  \"lr\": ");
  clue_sb_json_number(&b, r->lr);
  clue_sb_printf(&b, ",\n  \"train_seconds\": ");
  clue_sb_json_number(&b, r->seconds);
  clue_sb_printf(&b, ",\n  \"wall_seconds_this_start\": ");
  clue_sb_json_number(&b, r->wall_seconds);
  clue_sb_printf(&b, "\n}\n");
  char path[CLUE_PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/run.json", dir);
  int rc = b.failed ? clue_fail(err, CLUE_ENOMEM, "out of memory writing %s", path)
                    : clue_write_file_atomic(path, clue_sb_text(&b), b.n, err);
  clue_sb_free(&b);
  return rc;
}
