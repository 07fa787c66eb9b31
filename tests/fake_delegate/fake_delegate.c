/* A FAKE TFLite external delegate for tests: it loads, records the options it received, and
 * CLAIMS NO OPS (its Prepare replaces no nodes), so the model still runs on the CPU kernels.
 *
 * Entry points are those of tensorflow/lite/delegates/external/external_delegate_interface.h.
 * The TfLiteDelegate layout below is declared by hand from tensorflow/lite/core/c/common.h
 * (fields are "semi-ABI stable": only ever appended); we allocate with zeroed spare room so a
 * runtime that reads a later-appended field sees zero (= unset).
 *
 * Options: "log_path" = file that receives one "key=value" line per option, then "created",
 * and "prepare" when the interpreter applies the delegate; "fail" = "1" makes creation fail
 * through report_error (the runtime then raises ValueError).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef int TfLiteBufferHandle;
struct TfLiteContext;
struct TfLiteTensor;

typedef struct TfLiteDelegate {
  void* data_;
  TfLiteStatus (*Prepare)(struct TfLiteContext*, struct TfLiteDelegate*);
  TfLiteStatus (*CopyFromBufferHandle)(struct TfLiteContext*, struct TfLiteDelegate*,
                                       TfLiteBufferHandle, struct TfLiteTensor*);
  TfLiteStatus (*CopyToBufferHandle)(struct TfLiteContext*, struct TfLiteDelegate*,
                                     TfLiteBufferHandle, struct TfLiteTensor*);
  void (*FreeBufferHandle)(struct TfLiteContext*, struct TfLiteDelegate*, TfLiteBufferHandle*);
  int64_t flags;
  void* opaque_delegate_builder; /* must stay NULL: the runtime would prefer it over Prepare */
} TfLiteDelegate;

typedef struct {
  char log_path[4096];
} FakeData;

static void log_line(const FakeData* d, const char* line) {
  if (!d->log_path[0]) return;
  FILE* f = fopen(d->log_path, "a");
  if (!f) return;
  fprintf(f, "%s\n", line);
  fclose(f);
}

static TfLiteStatus fake_prepare(struct TfLiteContext* context, TfLiteDelegate* delegate) {
  (void)context;
  log_line((const FakeData*)delegate->data_, "prepare");
  return kTfLiteOk; /* claims no nodes: ReplaceNodeSubsetsWithDelegateKernels is never called */
}

TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t n,
                                              void (*report_error)(const char*)) {
  FakeData* d = (FakeData*)calloc(1, sizeof(FakeData));
  if (!d) return NULL;
  for (size_t i = 0; i < n; ++i) {
    if (strcmp(keys[i], "log_path") == 0) {
      strncpy(d->log_path, values[i], sizeof(d->log_path) - 1);
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (strcmp(keys[i], "fail") == 0 && strcmp(values[i], "1") == 0) {
      if (report_error) report_error("fake delegate: asked to fail");
      free(d);
      return NULL;
    }
    char line[8192];
    snprintf(line, sizeof(line), "%s=%s", keys[i], values[i]);
    log_line(d, line);
  }
  log_line(d, "created");
  /* spare zeroed room after the struct in case a newer runtime appended fields */
  TfLiteDelegate* delegate = (TfLiteDelegate*)calloc(1, sizeof(TfLiteDelegate) + 256);
  if (!delegate) { free(d); return NULL; }
  delegate->data_ = d;
  delegate->Prepare = fake_prepare;
  delegate->flags = 1; /* kTfLiteDelegateFlagsAllowDynamicTensors: it touches no tensor */
  return delegate;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) {
  if (!delegate) return;
  log_line((const FakeData*)delegate->data_, "destroyed");
  free(delegate->data_);
  free(delegate);
}
