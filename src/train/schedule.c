/* schedule.c — "auto" epoch counts and stop signals. */
#include <math.h>
#include <signal.h>

#include "clue/train.h"

static int64_t auto_epochs(double progress, double lr, double bpe) {
  double e = ceil(progress / lr / bpe);
  double floor_e = ceil(progress);
  return (int64_t)(e > floor_e ? e : floor_e);
}

void clue_schedule_resolve(const clue_config *cfg, int64_t n_cells, clue_schedule *s) {
  clue_schedule_resolve_bpe(cfg, (double)n_cells * (1 - cfg->val_split) / cfg->batch_size, s);
}

void clue_schedule_resolve_bpe(const clue_config *cfg, double bpe, clue_schedule *s) {
  if (bpe <= 0) bpe = 1;
  s->batches_per_epoch = bpe;
  s->align_burnin = cfg->align_burnin >= 0 ? cfg->align_burnin : auto_epochs(12, cfg->lr, bpe);
  s->max_epochs = cfg->max_epochs >= 0 ? cfg->max_epochs : auto_epochs(72, cfg->lr, bpe);
  s->patience = cfg->patience >= 0 ? cfg->patience : auto_epochs(9, cfg->lr, bpe);
  s->reduce_lr_patience =
      cfg->reduce_lr_patience >= 0 ? cfg->reduce_lr_patience : auto_epochs(3, cfg->lr, bpe);
}

static volatile sig_atomic_t stop_flag = 0;

static void on_stop_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

void clue_train_install_signals(void) {
  struct sigaction sa;
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
}

bool clue_train_stop_requested(void) { return stop_flag != 0; }
