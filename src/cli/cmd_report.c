/* cmd_report.c — `clue report`: one self-contained HTML page per run (run
 * facts, training curves, embedding map, evaluation) and a JSON file beside
 * it with the numbers the page shows. */
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "clue/cli.h"
#include "clue/json.h"
#include "clue/report.h"
#include "report_embed.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: clue report RUN_DIR [--embed DIR] [--eval EVAL.json] [--out FILE.html]\n"
          "\n"
          "One HTML page about a training run, self-contained (inline CSS, SVG charts,\n"
          "PNG maps as data URIs; nothing is fetched from the network): the run (status,\n"
          "ranks x threads, BLAS kernels, data shapes, config), the training curves of\n"
          "log.jsonl, a UMAP of the embedded cells of --embed coloured by modality, label\n"
          "and batch (with the confusion matrix of label transfer across modalities), and\n"
          "the figures of a clue eval --json file. report.json beside the page holds the\n"
          "numbers it shows. What is missing (no log.jsonl, a truncated line, a file\n"
          "without the embedding) is said on the page; exit status 0 (warnings on stderr),\n"
          "1 when nothing at all can be shown.\n"
          "\n"
          "options:\n"
          "  --embed DIR         a folder of .h5ad files written by clue embed (each a\n"
          "                      modality; obsm/X_clue): the embedding map\n"
          "  --eval FILE         a clue eval --json file: the evaluation section\n"
          "  --out FILE          the page (default RUN_DIR/report.html; the JSON is the\n"
          "                      same name with .json)\n"
          "  --key NAME          obsm key of the embedding (default X_clue)\n"
          "  --label COL         obs column of cell labels (default cell_type, if present)\n"
          "  --batch-key COL     obs column of batches to colour a map by (default: the\n"
          "                      run config's data.batch_key, if any)\n"
          "  --max-cells N       above N cells, a fixed random subsample of N is drawn\n"
          "                      (default 200000)\n"
          "  --neighbors K       UMAP neighbours (default 15)\n"
          "  --seed S            of the subsample and the UMAP (default 0)\n"
          "  --quiet             no progress lines\n"
          "  -h, --help          this help\n");
}

static int parse_args(int argc, char **argv, cli_report_opts *o, const clue_comm *comm) {
  static const struct option opts[] = {
      {"embed", required_argument, 0, 'e'},     {"eval", required_argument, 0, 'v'},
      {"out", required_argument, 0, 'o'},       {"key", required_argument, 0, 'k'},
      {"label", required_argument, 0, 'l'},     {"batch-key", required_argument, 0, 'b'},
      {"max-cells", required_argument, 0, 'm'}, {"neighbors", required_argument, 0, 'n'},
      {"seed", required_argument, 0, 's'},      {"quiet", no_argument, 0, 'q'},
      {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
  int c;
  optind = 1;
  opterr = 0;
  char msg[300];
  long v;
  while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
    switch (c) {
      case 'e': o->embed = optarg; break;
      case 'v': o->eval = optarg; break;
      case 'o': o->out = optarg; break;
      case 'k': o->key = optarg; break;
      case 'l': o->label = optarg; break;
      case 'b': o->batch_key = optarg; break;
      case 'q': o->quiet = true; break;
      case 'm':
        if (!cli_int_arg("--max-cells", optarg, 100, 100000000, &v, msg, sizeof msg))
          return cli_usage_error(comm, "report", usage, msg);
        o->max_cells = v;
        break;
      case 'n':
        if (!cli_int_arg("--neighbors", optarg, 2, 200, &v, msg, sizeof msg))
          return cli_usage_error(comm, "report", usage, msg);
        o->neighbors = (int)v;
        break;
      case 's':
        if (!cli_int_arg("--seed", optarg, 0, 2147483647L, &v, msg, sizeof msg))
          return cli_usage_error(comm, "report", usage, msg);
        o->seed = (uint64_t)v;
        break;
      case 'h':
        if (comm->rank == 0) usage(stdout);
        return 0;
      default:
        snprintf(msg, sizeof msg, "unknown or incomplete option '%s'", argv[optind - 1]);
        return cli_usage_error(comm, "report", usage, msg);
    }
  }
  if (optind + 1 != argc)
    return cli_usage_error(comm, "report", usage,
                           optind == argc ? "RUN_DIR is required" : "only one RUN_DIR");
  o->run_dir = argv[optind];
  return -1;
}

int cli_report_command(int argc, char **argv, const clue_comm *comm) {
  cli_report_opts o;
  cli_report_opts_default(&o);
  int st = parse_args(argc, argv, &o, comm);
  if (st >= 0) return st;
  clue_err err;
  clue_err_clear(&err);
  int warnings = 0;
  int rc = cli_report_write(&o, comm, &warnings, &err);
  return cli_report(comm, "report", rc, &err);
}

/* ---- the page ---------------------------------------------------------------- */

void cli_report_opts_default(cli_report_opts *o) {
  memset(o, 0, sizeof *o);
  o->key = "X_clue";
  o->max_cells = 200000;
  o->neighbors = 15;
}

/* What rank 0 read from the run folder. */
typedef struct inputs {
  char *run_text, *config_text, *eval_text;
  clue_json *run, *eval;
  report_log log;
  bool has_log;
  char batch_key[CLUE_NAME_MAX];
} inputs;

static void warn(const cli_report_opts *o, int *warnings, const char *fmt, const char *a,
                 const char *b) {
  (*warnings)++;
  if (o->silent_warnings) return;
  fprintf(stderr, "clue report: warning: ");
  fprintf(stderr, fmt, a, b);
  fprintf(stderr, "\n");
}

/* The value of "batch_key:" in the config text, if any. */
static void config_batch_key(const char *text, char *out, size_t size) {
  out[0] = '\0';
  const char *p = text ? strstr(text, "batch_key:") : NULL;
  if (!p) return;
  p += strlen("batch_key:");
  while (*p == ' ' || *p == '"' || *p == '\'') p++;
  size_t n = strcspn(p, "\"'\n #");
  if (n > 0 && n < size && strncmp(p, "null", 4) && strncmp(p, "~", 1))
    snprintf(out, size, "%.*s", (int)n, p);
}

static void read_inputs(const cli_report_opts *o, inputs *in, int *warnings) {
  char path[CLUE_PATH_MAX + 32];
  size_t len;
  clue_err e;
  snprintf(path, sizeof path, "%s/run.json", o->run_dir);
  if ((in->run_text = clue_read_file(path, &len)) && clue_json_parse(in->run_text, len, &in->run, &e))
    warn(o, warnings, "%s: %s (left out)", path, e.msg);
  else if (!in->run_text)
    warn(o, warnings, "%s: missing%s", path, " (status, layout and data shapes unknown)");
  snprintf(path, sizeof path, "%s/config.yaml", o->run_dir);
  if (!(in->config_text = clue_read_file(path, &len))) warn(o, warnings, "%s: missing%s", path, "");
  config_batch_key(in->config_text, in->batch_key, sizeof in->batch_key);
  snprintf(path, sizeof path, "%s/log.jsonl", o->run_dir);
  in->has_log = report_log_read(path, &in->log, &e) == CLUE_OK;
  if (!in->has_log) warn(o, warnings, "%s: missing%s", path, " (no training curves)");
  else if (in->log.bad_lines) warn(o, warnings, "%s: %s", path, "lines that do not parse are left out");
  if (o->eval && (!(in->eval_text = clue_read_file(o->eval, &len)) ||
                  clue_json_parse(in->eval_text, len, &in->eval, &e)))
    warn(o, warnings, "%s: %s (no evaluation section)", o->eval,
         in->eval_text ? e.msg : "cannot be read");
}

static void inputs_free(inputs *in) {
  free(in->run_text), free(in->config_text), free(in->eval_text);
  clue_json_free(in->run), clue_json_free(in->eval);
  report_log_free(&in->log);
}

/* Rank 0: the page's parts before the map. */
static void page_top(const cli_report_opts *o, const inputs *in, clue_strbuf *b, clue_strbuf *js) {
  char title[CLUE_PATH_MAX + 32], sub[256];
  snprintf(title, sizeof title, "clue report: %s", o->run_dir);
  time_t now = time(NULL);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M UTC", gmtime(&now));
  snprintf(sub, sizeof sub, "written %s by clue %s (%s)", stamp, CLUE_VERSION, CLUE_GIT_REV);
  report_page_begin(b, title, sub);
  clue_sb_printf(js, "{\n  \"run_dir\": ");
  clue_sb_json_string(js, o->run_dir);
  clue_sb_printf(js, ",\n  \"written\": \"%s\",\n  \"run\": %s,\n", stamp,
                 in->run ? in->run_text : "null");
  report_section_run(b, js, in->run, in->config_text, in->has_log ? &in->log : NULL);
  report_section_curves(b, js, in->run, in->has_log ? &in->log : NULL);
}

static void page_bottom(const cli_report_opts *o, const inputs *in, clue_strbuf *b,
                        clue_strbuf *js) {
  report_section_eval(b, js, in->eval, o->eval);
  clue_sb_printf(js, "  \"eval\": %s\n}\n", in->eval ? in->eval_text : "null");
  report_page_end(b);
}

/* Rank 0: writes the page and the JSON beside it. */
static int write_out(const cli_report_opts *o, const clue_strbuf *b, const clue_strbuf *js,
                     clue_err *err) {
  char html[CLUE_PATH_MAX + 32], json[CLUE_PATH_MAX + 40];
  if (o->out)
    snprintf(html, sizeof html, "%s", o->out);
  else
    snprintf(html, sizeof html, "%s/report.html", o->run_dir);
  size_t n = strlen(html);
  snprintf(json, sizeof json, "%.*s.json",
           (int)(n > 5 && !strcmp(html + n - 5, ".html") ? n - 5 : n), html);
  if (b->failed || js->failed) return clue_fail(err, CLUE_ENOMEM, "out of memory writing %s", html);
  int rc = clue_write_file_atomic(html, b->s, b->n, err);
  if (!rc) rc = clue_write_file_atomic(json, js->s, js->n, err);
  if (!rc && !o->quiet) printf("clue report: %s (and %s)\n", html, json);
  return rc;
}

int cli_report_write(const cli_report_opts *o, const clue_comm *comm, int *warnings,
                     clue_err *err) {
  struct stat st;
  int rc = stat(o->run_dir, &st) == 0 && S_ISDIR(st.st_mode)
               ? CLUE_OK
               : clue_fail(err, CLUE_EIO, "%s: not a folder", o->run_dir);
  rc = clue_comm_agree(comm, rc, err);
  if (rc) return rc;
  inputs in;
  memset(&in, 0, sizeof in);
  clue_strbuf b = {0}, js = {0};
  if (comm->rank == 0) {
    read_inputs(o, &in, warnings);
    page_top(o, &in, &b, &js);
  }
  char bk[CLUE_NAME_MAX];
  snprintf(bk, sizeof bk, "%s", in.batch_key);
  clue_comm_bcast(comm, bk, sizeof bk, 0);
  int64_t shown = 0;
  if (o->embed) {
    report_embed_args a = {.dir = o->embed, .key = o->key, .label = o->label,
                           .batch_key = o->batch_key ? o->batch_key : bk[0] ? bk : NULL,
                           .max_cells = o->max_cells, .seed = o->seed,
                           .neighbors = o->neighbors, .k_vote = 15, .map_px = 360,
                           .progress = !o->quiet};
    rc = report_embed_section(&a, comm, &b, &js, &shown, err);
    if (rc == CLUE_OK && shown == 0) warn(o, warnings, "%s: %s", o->embed, "no cells to map");
  }
  if (comm->rank == 0 && rc == CLUE_OK) {
    bool nothing = !in.run && !in.config_text && !in.has_log && !in.eval && shown == 0;
    page_bottom(o, &in, &b, &js);
    rc = nothing ? clue_fail(err, CLUE_EIO, "%s: nothing to show (no run.json, config.yaml, "
                                            "log.jsonl, embedding or evaluation)", o->run_dir)
                 : write_out(o, &b, &js, err);
  }
  rc = clue_comm_agree(comm, rc, err);
  inputs_free(&in);
  clue_sb_free(&b), clue_sb_free(&js);
  return rc;
}
