package com.efficientnetedge.core

import java.io.Closeable
import java.nio.ByteBuffer
import java.util.Locale

/** The LiteRT execution paths a user can ask for; [label] is how the screen names each one. */
enum class Accelerator(val label: String) {
    CPU("CPU (XNNPACK)"),
    GPU("GPU"),
    NNAPI("NNAPI")
}

/**
 * One interpreter bound to one accelerator: what [DelegatePolicy] runs, replaces and closes.
 * The app's implementation wraps a LiteRT `Interpreter` and its delegate; tests use fakes.
 */
interface InferenceEngine : Closeable {
    /**
     * One inference: the input tensor's bytes start at [input]'s position, the output tensor's bytes are
     * written from [output]'s position. Throws when the interpreter or its delegate fails.
     */
    fun run(input: ByteBuffer, output: ByteBuffer)
}

/** Builds engines; throws (an Exception or a LinkageError) when [Accelerator]'s delegate cannot be created or applied. */
interface EngineFactory<E : InferenceEngine> {
    fun create(accelerator: Accelerator): E
}

/**
 * What a timed comparison of the NNAPI interpreter with a CPU (XNNPACK) one on the same input showed.
 *
 * The Java API cannot count the nodes a delegate took. When NNAPI takes none (no accelerator, or only the
 * `nnapi-reference` CPU device, which the app disables), XNNPACK runs the whole graph in both interpreters:
 * the output is byte-identical and the time the same. Only then is the verdict "ran on CPU"; anything else
 * is reported as measured, never as "ran on an accelerator".
 */
data class NnapiCheck(
    /** Median ms per inference with NNAPI, and with the CPU interpreter, runs interleaved. */
    val nnapiMs: Double,
    val cpuMs: Double,
    /** The two outputs are byte-identical. */
    val sameOutput: Boolean,
    /** Why no comparison could be made (the CPU interpreter failed), else null. */
    val error: String? = null
) {
    /** Identical output and medians within [TIME_TOLERANCE] of each other. */
    val ranOnCpu: Boolean
        get() = error == null && sameOutput && cpuMs > 0 && Math.abs(nnapiMs / cpuMs - 1.0) <= TIME_TOLERANCE

    val describe: String
        get() = when {
            error != null -> "NNAPI requested; the device decides (no CPU comparison: $error)"
            ranOnCpu -> "NNAPI (no accelerator found: ran on CPU)"
            else -> String.format(
                Locale.US, "NNAPI requested; the device decides (%.1f ms vs CPU %.1f ms, output %s)",
                nnapiMs, cpuMs, if (sameOutput) "identical" else "differs"
            )
        }

    companion object {
        /** Relative difference of the medians below which the two times count as the same. */
        const val TIME_TOLERANCE = 0.15
    }
}

/**
 * What runs, which can differ from what was asked. The screen shows [describe], never [requested] alone:
 * "GPU", "CPU (fallback from GPU: reason)", "NNAPI (no accelerator found: ran on CPU)", …
 */
data class Backend(
    val requested: Accelerator,
    val active: Accelerator,
    /** Why [requested] is not running, when it fell back to the CPU. */
    val fallbackReason: String? = null,
    /** For NNAPI: the comparison with the CPU, once made. */
    val nnapi: NnapiCheck? = null
) {
    val describe: String
        get() = when {
            fallbackReason != null -> "CPU (fallback from ${requested.label}: $fallbackReason)"
            active == Accelerator.NNAPI -> nnapi?.describe ?: "NNAPI requested; the device decides (comparing with CPU…)"
            else -> active.label
        }
}
