/* fuzz_config.c — libFuzzer harness for the YAML config loader.
 *
 * Input: YAML text, then optionally NUL-separated `--set` assignments
 * ("a.b=v"). Each is applied on top of the defaults; then the config is
 * validated, written back as YAML, and that text must load back to an equal
 * config (clue_config_to_yaml promises it). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/config.h"

static void promise(int ok, const char *what, const char *detail) {
  if (ok) return;
  fprintf(stderr, "fuzz_config: broken promise: %s\n%s\n", what, detail ? detail : "");
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  clue_config cfg;
  clue_config_defaults(&cfg);
  clue_err err;
  int rc = clue_config_load_string(text, (size & 1) ? "/base" : NULL, "fuzz.yaml", &cfg, &err);
  if (rc) {
    promise(err.msg[0] != '\0' && !strchr(err.msg, '\n'), "one-line error", err.msg);
    clue_config fresh;
    clue_config_defaults(&fresh);
    promise(memcmp(&fresh, &cfg, sizeof cfg) == 0, "a refused YAML text leaves the config", text);
  }
  /* the NUL-separated tail: --set assignments */
  size_t at = strlen(text) + 1;
  for (int i = 0; at < size && i < 8; i++) {
    clue_config before = cfg;
    rc = clue_config_set(&cfg, text + at, &err);
    if (rc) {
      promise(err.msg[0] != '\0' && !strchr(err.msg, '\n'), "one-line error", err.msg);
      promise(memcmp(&before, &cfg, sizeof cfg) == 0, "a refused --set leaves the config", text + at);
    }
    at += strlen(text + at) + 1;
  }
  rc = clue_config_validate(&cfg, &err);
  if (rc) promise(err.msg[0] != '\0' && !strchr(err.msg, '\n'), "one-line error", err.msg);
  char *yaml = clue_config_to_yaml(&cfg);
  promise(yaml != NULL, "to_yaml", NULL);
  clue_config back;
  clue_config_defaults(&back);
  rc = clue_config_load_string(yaml, NULL, "written", &back, &err);
  if (rc) fprintf(stderr, "%s\n", err.msg);
  promise(rc == CLUE_OK, "written YAML loads back", yaml);
  promise(clue_config_equal(&cfg, &back), "written YAML loads back equal", yaml);
  free(yaml);
  free(text);
  return 0;
}
