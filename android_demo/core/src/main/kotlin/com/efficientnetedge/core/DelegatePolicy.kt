package com.efficientnetedge.core

import java.io.Closeable
import java.nio.Buffer
import java.nio.ByteBuffer

/**
 * Which interpreter runs, and what happens when its delegate fails. Pure Kotlin, tested on the JVM with
 * fake engines (DelegatePolicyTest); the app plugs in LiteRT engines.
 *
 * - The requested accelerator's engine is built first. If that throws (library missing, GPU not on the
 *   compatibility list, "Internal error: Failed to apply delegate: …"), a CPU engine is built instead.
 * - A delegated engine that throws while running is closed and replaced by a CPU engine, and the same input
 *   runs again on it, so the caller still gets its result. (LiteRT's Java `run` throws
 *   `IllegalArgumentException("Internal error: Failed to run on the given Interpreter: …")` when a delegate
 *   fails during invoke, which is how NNAPI and GPU failures at run time arrive.)
 * - NNAPI: after its first successful run, the same input is timed against a CPU engine ([NnapiCheck]).
 *
 * [backend] always says what runs and why. What is not a delegate's failure is thrown to the caller: a
 * failure of the CPU engine itself, and Errors other than LinkageError (OutOfMemoryError…).
 * Not thread-safe: create, use and close an instance on one thread (the GPU delegate requires it anyway).
 */
class DelegatePolicy<E : InferenceEngine>(
    private val factory: EngineFactory<E>,
    val requested: Accelerator,
    /** Timed runs of each interpreter in the NNAPI comparison (after one warm-up run of the CPU one). */
    private val nnapiRuns: Int = 5,
    private val clock: () -> Long = { System.nanoTime() }
) : Closeable {
    /** The engine in use now. */
    var engine: E
        private set

    /** What runs now, and why. */
    var backend: Backend
        private set

    /** Successful runs on the current [engine]. */
    var runs = 0
        private set

    private var nnapiCheckPending: Boolean

    init {
        if (requested == Accelerator.CPU) {
            engine = factory.create(Accelerator.CPU)
            backend = Backend(requested, Accelerator.CPU)
        } else {
            var built: E? = null
            var reason: String? = null
            try {
                built = factory.create(requested)
            } catch (t: Throwable) {
                if (!isDelegateFailure(t)) throw t
                reason = brief(t)
            }
            engine = built ?: factory.create(Accelerator.CPU)
            backend = if (built != null) Backend(requested, requested) else Backend(requested, Accelerator.CPU, reason)
        }
        nnapiCheckPending = backend.active == Accelerator.NNAPI && nnapiRuns > 0
    }

    /**
     * Run one inference (see [InferenceEngine.run]). If a delegate fails, the result comes from the CPU
     * engine that replaces it and [backend] says so.
     */
    fun run(input: ByteBuffer, output: ByteBuffer) {
        val inPos = input.position()
        val outPos = output.position()
        try {
            engine.run(input, output)
        } catch (t: Throwable) {
            if (backend.active == Accelerator.CPU || !isDelegateFailure(t)) throw t
            replaceWithCpu(factory.create(Accelerator.CPU), "failed at run ${runs + 1}: ${brief(t)}")
            seek(input, inPos)
            seek(output, outPos)
            engine.run(input, output)
        }
        runs++
        if (nnapiCheckPending) {
            nnapiCheckPending = false
            compareNnapiWithCpu(input, inPos, output, outPos)
        }
    }

    override fun close() = engine.close()

    private fun replaceWithCpu(cpu: E, reason: String) {
        val failed = engine
        engine = cpu
        backend = Backend(requested, Accelerator.CPU, reason)
        runs = 0
        nnapiCheckPending = false
        try {
            failed.close()
        } catch (ignored: Exception) {
            // The failed engine's resources are lost either way; the CPU engine is what matters now.
        }
    }

    /** NNAPI just produced [output] for [input]: time it against a CPU engine on the same input. */
    private fun compareNnapiWithCpu(input: ByteBuffer, inPos: Int, output: ByteBuffer, outPos: Int) {
        val size = output.limit() - outPos
        val reference = bytes(output, outPos, size)
        val cpu = try {
            factory.create(Accelerator.CPU)
        } catch (t: Throwable) {
            if (!isDelegateFailure(t)) throw t
            backend = backend.copy(nnapi = NnapiCheck(0.0, 0.0, false, brief(t)))
            return
        }
        var keepCpu = false
        try {
            val scratch = ByteBuffer.allocateDirect(size).order(output.order())
            // One CPU run; false (and the reason on backend) when the CPU engine itself fails.
            val cpuRun = {
                seek(input, inPos)
                seek(scratch, 0)
                try {
                    cpu.run(input, scratch)
                    true
                } catch (t: Throwable) {
                    if (!isDelegateFailure(t)) throw t
                    backend = backend.copy(nnapi = NnapiCheck(0.0, 0.0, false, brief(t)))
                    false
                }
            }
            if (!cpuRun()) return // the first run (of a fresh interpreter, slower) is a warm-up
            val sameOutput = bytes(scratch, 0, size).contentEquals(reference)
            val nnapiNs = LongArray(nnapiRuns)
            val cpuNs = LongArray(nnapiRuns)
            for (i in 0 until nnapiRuns) {
                seek(input, inPos)
                seek(output, outPos)
                var start = clock()
                try {
                    engine.run(input, output)
                } catch (t: Throwable) {
                    if (!isDelegateFailure(t)) throw t
                    keepCpu = true
                    replaceWithCpu(cpu, "failed at run ${runs + 1}: ${brief(t)}")
                    seek(input, inPos)
                    seek(output, outPos)
                    cpu.run(input, output)
                    runs++
                    return
                }
                nnapiNs[i] = clock() - start
                runs++
                start = clock()
                if (!cpuRun()) return
                cpuNs[i] = clock() - start
            }
            backend = backend.copy(nnapi = NnapiCheck(median(nnapiNs) / 1e6, median(cpuNs) / 1e6, sameOutput))
        } finally {
            if (!keepCpu) cpu.close()
        }
    }

    private companion object {
        /** A delegate's failure: any Exception, or a missing class / native library. Not OutOfMemoryError. */
        fun isDelegateFailure(t: Throwable) = t is Exception || t is LinkageError

        /** The first line of the message (LiteRT's run on for lines), for the status line. */
        fun brief(t: Throwable): String {
            val line = t.message?.lineSequence()?.map { it.trim() }?.firstOrNull { it.isNotEmpty() }
            val text = line ?: t.javaClass.simpleName
            return if (text.length <= 200) text else text.substring(0, 199) + "…"
        }

        /** Position through Buffer: ByteBuffer.position(int) returning ByteBuffer does not exist before Java 9 / old Android. */
        fun seek(b: ByteBuffer, position: Int) {
            (b as Buffer).position(position)
        }

        fun bytes(b: ByteBuffer, from: Int, size: Int) = ByteArray(size) { b.get(from + it) }

        fun median(v: LongArray): Double {
            val s = v.sortedArray()
            return if (s.size % 2 == 1) s[s.size / 2].toDouble() else (s[s.size / 2 - 1] + s[s.size / 2]) / 2.0
        }
    }
}
