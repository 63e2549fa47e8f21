/* prof.c — exclusive-time accounting of named sections (see prof.h). */
#include "clue/prof.h"

#include <string.h>
#include <time.h>

clue_prof clue_prof_state;

static const char *const prof_labels[CLUE_PROF_N] = {
#define CLUE_PROF_LABEL(name, label) label,
    CLUE_PROF_TABLE(CLUE_PROF_LABEL)
#undef CLUE_PROF_LABEL
};

double clue_prof_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *clue_prof_label(clue_prof_id id) {
  return id >= 0 && id < CLUE_PROF_N ? prof_labels[id] : "?";
}

void clue_prof_reset(void) {
  bool on = clue_prof_state.on;
  memset(&clue_prof_state, 0, sizeof clue_prof_state);
  clue_prof_state.on = on;
  clue_prof_state.stack[0] = CLUE_PROF_OTHER;
  clue_prof_state.mark = clue_prof_now();
}

void clue_prof_enable(bool on) {
  clue_prof_state.on = on;
  clue_prof_reset();
}

/* Charges the time since the last mark to the innermost open section. */
static void charge(void) {
  double t = clue_prof_now();
  clue_prof *p = &clue_prof_state;
  p->seconds[p->stack[p->depth]] += t - p->mark;
  p->mark = t;
}

void clue_prof_push_slow(clue_prof_id id) {
  clue_prof *p = &clue_prof_state;
  charge();
  p->calls[id]++;
  if (p->depth + 1 < CLUE_PROF_DEPTH)
    p->stack[++p->depth] = id;
  else
    p->overflow++; /* deeper than the stack: charged to the enclosing section */
}

void clue_prof_pop_slow(void) {
  clue_prof *p = &clue_prof_state;
  charge();
  if (p->overflow > 0)
    p->overflow--;
  else if (p->depth > 0)
    p->depth--;
}

void clue_prof_read(clue_prof *out) {
  if (clue_prof_state.on) charge();
  *out = clue_prof_state;
}
