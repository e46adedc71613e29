/* Runs the HTTP harness (fuzz_http.c) without libFuzzer: over files or
 * folders given on the command line, or over seed requests written here (the
 * AIAA clients' request styles, Expect: 100-continue, chunked and pipelined
 * requests, malformed multipart bodies), then truncations and byte flips of
 * each, so the harness runs in the normal test suite.
 *
 *   fuzz_http_replay                      generate and run the corpus (TAP)
 *   fuzz_http_replay --write-corpus DIR   write the seeds to DIR
 *   fuzz_http_replay FILE|DIR...          replay inputs (crash reproducers) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../c/tap.h"
#include "fuzz_replay_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PYB "----------lImIt_of_THE_fIle_eW_$"
#define CPPB "MIME_boundary_0123456789ABCDEF"

/* A multipart body with a params part and a file part. */
#define BODY(b, file_field, filename, payload)                              \
  "--" b "\r\nContent-Disposition: form-data; name=\"params\"\r\n\r\n{}\r\n" \
  "--" b "\r\nContent-Disposition: form-data; name=\"" file_field          \
  "\"; filename=\"" filename "\"\r\nContent-Type: application/octet-stream\r\n\r\n" \
  payload "\r\n--" b "--\r\n"

static const char *const seeds[] = {
  "GET /v1/models?model=spleen&label=a%20b&flag HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n",
  /* The Python client: HTTP/1.1, unquoted boundary with '$'. */
  "POST /v1/segmentation?model=m HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
  "boundary=" PYB "\r\nContent-Length: 286\r\n\r\n"
  BODY(PYB, "datapoint", "test-data/image.nii.gz", "\x1f\x8b\x08\x00binary\r\n--not-it"),
  /* The C++ client: HTTP/1.0, Connection: close, quoted boundary. */
  "POST /v1/segmentation?model=m HTTP/1.0\r\nConnection: close\r\nContent-Type: "
  "multipart/form-data; boundary=\"" CPPB "\"\r\nContent-Length: 258\r\n\r\n"
  BODY(CPPB, "image", "image.nii.gz", "0123456789"),
  /* Expect: 100-continue, then a plain body. */
  "PUT /session/ HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\n"
  "Content-Length: 13\r\n\r\n{\"dicom\": {}}",
  /* A chunked multipart upload. */
  "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: "
  "multipart/form-data; boundary=XyZ\r\n\r\n"
  "2a\r\n--XyZ\r\nContent-Disposition: form-data; name=\"a\r\n"
  "30\r\n\"; filename=\"..\\\\x\\\\y.bin\"\r\n\r\nhello world\r\n--XyZ--\r\n\r\n0\r\n\r\n",
  /* Two pipelined requests on one connection. */
  "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
  /* Malformed: no boundary, a parameter after it, a body that never closes. */
  "POST /u HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data\r\nContent-Length: 4\r\n\r\nabcd",
  "POST /u HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=q; charset=x\r\n"
  "Content-Length: 9\r\n\r\n--q--\r\n\r\n",
  "POST /u HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=q\r\n"
  "Content-Length: 60\r\n\r\n--q\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\nxx",
  /* Over the harness's 1 MiB limit, from the headers alone. */
  "POST /u HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=q\r\n"
  "Content-Length: 99999999\r\n\r\n--q\r\n",
};
#define NSEEDS (int)(sizeof seeds / sizeof seeds[0])

/* Truncations every few bytes (a client that stops anywhere) and byte flips,
 * where separators, digits of lengths and quotes matter most. */
static long run_mutations(const uint8_t *buf, size_t len)
{
  static const uint8_t pick[] = {0, '\r', '\n', '"', ';', '-', '9', ':', ' ', 0xff};
  return fuzz_replay_mutations(buf, len, 40, 40, pick, sizeof pick);
}

static void test_seeds(void)
{
  for (int k = 0; k < NSEEDS; k++)
    LLVMFuzzerTestOneInput((const uint8_t *)seeds[k], strlen(seeds[k]));
  CHECK(NSEEDS >= 10);
}

static void test_generated_corpus(void)
{
  long count = 0;
  for (int k = 0; k < NSEEDS; k++)
    count += run_mutations((const uint8_t *)seeds[k], strlen(seeds[k]));
  printf("# %ld inputs ran through the harness\n", count);
  CHECK(count > 500);
}

int main(int argc, char **argv)
{
  if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) {
    mkdir(argv[2], 0755);
    for (int k = 0; k < NSEEDS; k++) {
      char p[1024];
      snprintf(p, sizeof p, "%s/seed-%02d.http", argv[2], k);
      FILE *f = fopen(p, "wb");
      if (!f) continue;
      fwrite(seeds[k], 1, strlen(seeds[k]), f);
      fclose(f);
    }
    return 0;
  }
  if (argc > 1) {
    for (int i = 1; i < argc; i++) fuzz_replay_path(argv[i]);
    printf("# replayed\n");
    return 0;
  }
  RUN(test_seeds);
  RUN(test_generated_corpus);
  TAP_DONE();
}
