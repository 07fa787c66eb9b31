package com.efficientnetedge.demo

/** The LiteRT execution paths the user can ask for. */
enum class Accelerator(val label: String) {
    CPU("CPU (XNNPACK)"),
    GPU("GPU delegate"),
    NNAPI("NNAPI delegate");
}

/**
 * What actually runs, which can differ from what was asked: a delegate that fails to load falls back to
 * CPU and [fallbackReason] says why. The screen shows [active], never [requested] alone.
 */
data class Backend(val requested: Accelerator, val active: Accelerator, val fallbackReason: String? = null) {
    val describe: String
        get() = if (fallbackReason == null) "Running on ${active.label}"
        else "${requested.label} unavailable: $fallbackReason. Running on ${active.label}"
}

/** A delegate could not be created or applied on this phone. */
class DelegateUnavailableException(message: String, cause: Throwable? = null) : Exception(message, cause)
