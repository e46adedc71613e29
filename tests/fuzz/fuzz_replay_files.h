/* Replaying saved inputs (crash reproducers, corpora) through a harness's
 * LLVMFuzzerTestOneInput without libFuzzer; shared by the replay programs so
 * each does not carry its own copy of the file walking. */
#ifndef LM_FUZZ_REPLAY_FILES_H
#define LM_FUZZ_REPLAY_FILES_H

/* One file's bytes through the harness (unreadable files are skipped). */
void fuzz_replay_file(const char *path);
/* A file, or every file in a folder (not recursing; dot files skipped). */
void fuzz_replay_path(const char *path);

#endif
