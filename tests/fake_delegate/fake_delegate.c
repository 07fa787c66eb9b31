/* A FAKE TFLite external delegate for tests: it loads and records the options it received. By
 * default it CLAIMS NO OPS (its Prepare replaces no nodes), so the model still runs on the CPU.
 * With the option "claim" = "last" it takes the last node of the execution plan: its kernel
 * only logs "invoke" (it computes nothing, so that node's output is left as it was), which is
 * enough to prove that a delegate which takes nodes is reported as running.
 *
 * Entry points are those of tensorflow/lite/delegates/external/external_delegate_interface.h.
 * The TfLiteDelegate layout below is declared by hand from tensorflow/lite/core/c/common.h
 * (fields are "semi-ABI stable": only ever appended); we allocate with zeroed spare room so a
 * runtime that reads a later-appended field sees zero (= unset).
 *
 * TfLiteContext / TfLiteRegistration below are likewise the leading fields of common.h; the
 * registration is passed BY VALUE, so it carries zeroed spare room at the end too.
 *
 * Options: "log_path" = file that receives one "key=value" line per option, then "created",
 * "prepare" when the interpreter applies the delegate and "invoke" each time a claimed node
 * runs; "fail" = "1" makes creation fail through report_error (the runtime then raises
 * ValueError); "claim" = "last" takes the last node.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef int TfLiteBufferHandle;
struct TfLiteContext;
struct TfLiteTensor;
struct TfLiteNode;
struct TfLiteDelegate;

typedef struct {
  int size;
  int data[];
} TfLiteIntArray;

typedef struct TfLiteRegistration {
  void* (*init)(struct TfLiteContext*, const char*, size_t);
  void (*free)(struct TfLiteContext*, void*);
  TfLiteStatus (*prepare)(struct TfLiteContext*, struct TfLiteNode*);
  TfLiteStatus (*invoke)(struct TfLiteContext*, struct TfLiteNode*);
  const char* (*profiling_string)(const struct TfLiteContext*, const struct TfLiteNode*);
  int32_t builtin_code;
  const char* custom_name;
  int version;
  void* registration_external;
  void* async_kernel;
  uint64_t inplace_operator;
  char spare[256]; /* zero: fields a newer runtime appended */
} TfLiteRegistration;

typedef struct TfLiteContext {
  size_t tensors_size;
  TfLiteStatus (*GetExecutionPlan)(struct TfLiteContext*, TfLiteIntArray**);
  struct TfLiteTensor* tensors;
  void* impl_;
  void* ResizeTensor;
  void* ReportError;
  void* AddTensors;
  void* GetNodeAndRegistration;
  TfLiteStatus (*ReplaceNodeSubsetsWithDelegateKernels)(struct TfLiteContext*, TfLiteRegistration,
                                                        const TfLiteIntArray*,
                                                        struct TfLiteDelegate*);
} TfLiteContext;

enum { kTfLiteBuiltinDelegate = 51 };

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
  int claim_last;
} FakeData;

/* The kernel of a claimed node finds the log through this (one fake delegate per test process). */
static FakeData* g_claimed_by = NULL;

static void log_line(const FakeData* d, const char* line) {
  if (!d->log_path[0]) return;
  FILE* f = fopen(d->log_path, "a");
  if (!f) return;
  fprintf(f, "%s\n", line);
  fclose(f);
}

static TfLiteStatus fake_kernel_invoke(struct TfLiteContext* context, struct TfLiteNode* node) {
  (void)context;
  (void)node;
  if (g_claimed_by) log_line(g_claimed_by, "invoke");
  return kTfLiteOk;
}

static TfLiteStatus fake_prepare(struct TfLiteContext* context, TfLiteDelegate* delegate) {
  FakeData* d = (FakeData*)delegate->data_;
  log_line(d, "prepare");
  if (!d->claim_last) return kTfLiteOk; /* claims no nodes */
  TfLiteIntArray* plan = NULL;
  if (context->GetExecutionPlan(context, &plan) != kTfLiteOk || !plan || plan->size < 1) {
    return kTfLiteError;
  }
  TfLiteIntArray* nodes = (TfLiteIntArray*)calloc(1, sizeof(TfLiteIntArray) + sizeof(int));
  if (!nodes) return kTfLiteError;
  nodes->size = 1;
  nodes->data[0] = plan->data[plan->size - 1];
  TfLiteRegistration reg;
  memset(&reg, 0, sizeof(reg));
  reg.invoke = fake_kernel_invoke;
  reg.builtin_code = kTfLiteBuiltinDelegate;
  reg.custom_name = "FakeDelegate";
  reg.version = 1;
  g_claimed_by = d;
  TfLiteStatus status = context->ReplaceNodeSubsetsWithDelegateKernels(context, reg, nodes, delegate);
  free(nodes);
  return status;
}

TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t n,
                                              void (*report_error)(const char*)) {
  FakeData* d = (FakeData*)calloc(1, sizeof(FakeData));
  if (!d) return NULL;
  for (size_t i = 0; i < n; ++i) {
    if (strcmp(keys[i], "log_path") == 0) {
      strncpy(d->log_path, values[i], sizeof(d->log_path) - 1);
    }
    if (strcmp(keys[i], "claim") == 0 && strcmp(values[i], "last") == 0) d->claim_last = 1;
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
  if (g_claimed_by == delegate->data_) g_claimed_by = NULL;
  free(delegate->data_);
  free(delegate);
}
