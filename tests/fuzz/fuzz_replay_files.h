/* Replaying saved inputs (crash reproducers, corpora) through a harness's
 * LLVMFuzzerTestOneInput without libFuzzer; shared by the replay programs so
 * each does not carry its own copy of the file walking. */
#ifndef LM_FUZZ_REPLAY_FILES_H
#define LM_FUZZ_REPLAY_FILES_H

#include <stddef.h>
#include <stdint.h>

/* One file's bytes through the harness (unreadable files are skipped). */
void fuzz_replay_file(const char *path);
/* A file, or every file in a folder (not recursing; dot files skipped). */
void fuzz_replay_path(const char *path);
/* data, then its truncations every 1 + len / cuts bytes, then `rounds`
 * copies with 1 to 3 bytes changed (odd rounds: a byte from pick[npick];
 * even rounds: one bit flipped), each through the harness.  The positions
 * come from one fixed LCG (seed 6006) shared by the calls of a program, so
 * runs repeat.  Returns the number of inputs run. */
long fuzz_replay_mutations(const uint8_t *data, size_t len, size_t cuts, int rounds,
                           const uint8_t *pick, size_t npick);

#endif
