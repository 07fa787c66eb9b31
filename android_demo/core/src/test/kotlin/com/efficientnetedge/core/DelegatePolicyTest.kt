package com.efficientnetedge.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertSame
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.nio.ByteBuffer

/**
 * DelegatePolicy with fake engines that fail the way LiteRT 1.0.1 does. The messages are real ones:
 * creation — `Interpreter(...)` throws IllegalArgumentException("Internal error: Failed to apply delegate: …")
 * (nativeinterpreterwrapper_jni.cc, message from an NNAPI compilation failure); run time — `run` throws
 * IllegalArgumentException("Internal error: Failed to run on the given Interpreter: …") (same file, message
 * from a GPU delegate failing during invoke, tensorflow/tensorflow#41550).
 */
class DelegatePolicyTest {
    private val applyFailure = "Internal error: Failed to apply delegate: NN API returned error ANEURALNETWORKS_OP_FAILED " +
        "at line 4483 while completing NNAPI compilation.\n\nNode number 7 (TfLiteNnapiDelegate) failed to prepare.\n" +
        "Restored original execution plan after delegate application failure."
    private val runFailure = "Internal error: Failed to run on the given Interpreter: TfLiteGpuDelegate Invoke: Failed to " +
        "read data from GPU (clEnqueueReadBuffer) - Execution status error for events in wait list\n" +
        "Node number 213 (TfLiteGpuDelegateV2) failed to invoke.\n"

    private class Clock { var nanos = 0L }

    /** How a fake engine for one accelerator behaves. */
    private class Behaviour(
        val ms: Long = 10,
        /** Added to every output byte: engines with the same bias give identical outputs. */
        val bias: Int = 0,
        /** Thrown by the factory instead of building the engine. */
        val createFailure: Throwable? = null,
        /** Run number (1-based, per engine) from which run() throws [runFailure]. */
        val failFromRun: Int = Int.MAX_VALUE,
        val runFailure: () -> Throwable = { IllegalStateException("unset") }
    )

    /**
     * Reads the input like LiteRT does for a heap buffer (relative gets: the position moves, also when the
     * run then fails) and writes output[i] = input[i] + bias, so a rerun on the wrong bytes shows.
     */
    private class FakeEngine(val accelerator: Accelerator, val b: Behaviour, val clock: Clock) : InferenceEngine {
        var runs = 0
        var closed = false
        override fun run(input: ByteBuffer, output: ByteBuffer) {
            if (closed) throw IllegalStateException("Internal error: The Interpreter has already been closed.")
            runs++
            // As LiteRT: the input is copied into the tensor first, then invoke() runs and may fail.
            val inBytes = ByteArray(input.remaining())
            // An Error, not an Exception: the policy must not take a rerun on a spent buffer for a delegate failure.
            if (inBytes.isEmpty()) throw AssertionError("run on an input buffer whose position was not reset")
            input.get(inBytes)
            if (runs >= b.failFromRun) throw b.runFailure()
            clock.nanos += b.ms * 1_000_000
            for (i in 0 until output.remaining()) output.put((inBytes[i % inBytes.size] + b.bias).toByte())
        }
        override fun close() { closed = true }
    }

    private class FakeFactory(val clock: Clock, val behaviours: Map<Accelerator, Behaviour>) : EngineFactory<FakeEngine> {
        val built = ArrayList<FakeEngine>()
        override fun create(accelerator: Accelerator): FakeEngine {
            val b = behaviours[accelerator] ?: Behaviour()
            b.createFailure?.let { throw it }
            return FakeEngine(accelerator, b, clock).also { built.add(it) }
        }
    }

    private val clock = Clock()
    private fun policy(requested: Accelerator, vararg b: Pair<Accelerator, Behaviour>): Pair<DelegatePolicy<FakeEngine>, FakeFactory> {
        val factory = FakeFactory(clock, mapOf(*b))
        return DelegatePolicy(factory, requested, nnapiRuns = 5, clock = { clock.nanos }) to factory
    }

    private val input = byteArrayOf(1, 2, 3, 4, 5, 6)
    private fun inputBuffer(): ByteBuffer = ByteBuffer.wrap(input.copyOf())
    private fun run(p: DelegatePolicy<FakeEngine>): ByteArray {
        val out = ByteBuffer.allocate(input.size)
        p.run(inputBuffer(), out)
        return out.array()
    }
    private fun cpuOutput() = input.copyOf()

    @Test fun cpuRunsOnCpu() {
        val (p, f) = policy(Accelerator.CPU)
        assertArrayEquals(cpuOutput(), run(p))
        assertEquals("CPU (XNNPACK)", p.backend.describe)
        assertEquals(listOf(Accelerator.CPU), f.built.map { it.accelerator })
    }

    @Test fun workingGpuRunsOnGpu() {
        val (p, _) = policy(Accelerator.GPU, Accelerator.GPU to Behaviour(bias = 1))
        assertArrayEquals(ByteArray(input.size) { (input[it] + 1).toByte() }, run(p))
        assertEquals(Backend(Accelerator.GPU, Accelerator.GPU), p.backend)
        assertEquals("GPU", p.backend.describe)
    }

    @Test fun delegateThatCannotBeAppliedFallsBackAtCreation() {
        val (p, f) = policy(Accelerator.NNAPI, Accelerator.NNAPI to Behaviour(createFailure = IllegalArgumentException(applyFailure)))
        assertEquals(Accelerator.CPU, p.backend.active)
        assertEquals("CPU (fallback from NNAPI: Internal error: Failed to apply delegate: NN API returned error " +
            "ANEURALNETWORKS_OP_FAILED at line 4483 while completing NNAPI compilation.)", p.backend.describe)
        assertArrayEquals(cpuOutput(), run(p))
        assertEquals(listOf(Accelerator.CPU), f.built.map { it.accelerator })
    }

    @Test fun missingDelegateLibraryFallsBackAtCreation() {
        val missing = NoClassDefFoundError("Failed resolution of: Lorg/tensorflow/lite/gpu/GpuDelegateFactory\$Options;")
        val (p, _) = policy(Accelerator.GPU, Accelerator.GPU to Behaviour(createFailure = missing))
        assertTrue(p.backend.describe, p.backend.describe.startsWith("CPU (fallback from GPU: Failed resolution of"))
        assertArrayEquals(cpuOutput(), run(p))
    }

    @Test fun delegateFailingAtTheFirstRunIsReplacedByCpuForThatSameInput() {
        val gpu = Behaviour(bias = 1, failFromRun = 1, runFailure = { IllegalArgumentException(runFailure) })
        val (p, f) = policy(Accelerator.GPU, Accelerator.GPU to gpu)
        assertEquals("GPU", p.backend.describe)
        // The frame that hit the failure still gets its result, from the CPU, on the same input bytes.
        assertArrayEquals(cpuOutput(), run(p))
        assertEquals("CPU (fallback from GPU: failed at run 1: Internal error: Failed to run on the given Interpreter: " +
            "TfLiteGpuDelegate Invoke: Failed to read data from GPU (clEnqueueReadBuffer) - Execution status error " +
            "for events in wait list)", p.backend.describe)
        val (gpuEngine, cpuEngine) = f.built
        assertTrue("the failed GPU engine is closed", gpuEngine.closed)
        assertSame(cpuEngine, p.engine)
        repeat(3) { assertArrayEquals(cpuOutput(), run(p)) }
        assertEquals("the GPU engine is not tried again", 1, gpuEngine.runs)
        assertEquals(4, cpuEngine.runs)
    }

    @Test fun delegateFailingAtALaterRunFallsBackThen() {
        val gpu = Behaviour(bias = 1, failFromRun = 3, runFailure = { IllegalArgumentException(runFailure) })
        val (p, _) = policy(Accelerator.GPU, Accelerator.GPU to gpu)
        repeat(2) { assertEquals(2.toByte(), run(p)[0]) }
        assertEquals(1.toByte(), run(p)[0])
        assertTrue(p.backend.describe, p.backend.describe.startsWith("CPU (fallback from GPU: failed at run 3: Internal error"))
    }

    @Test fun nnapiErrorReportedAfterARunFallsBackToo() {
        // The app's engine turns NnApiDelegate.getNnapiErrno() != 0 after run() into an exception.
        val nnapi = Behaviour(failFromRun = 1, runFailure = { IllegalStateException("NNAPI error 4 (ANEURALNETWORKS_OP_FAILED) after run") })
        val (p, _) = policy(Accelerator.NNAPI, Accelerator.NNAPI to nnapi)
        assertArrayEquals(cpuOutput(), run(p))
        assertEquals("CPU (fallback from NNAPI: failed at run 1: NNAPI error 4 (ANEURALNETWORKS_OP_FAILED) after run)", p.backend.describe)
    }

    @Test fun outOfMemoryIsNotBlamedOnTheDelegate() {
        val gpu = Behaviour(failFromRun = 1, runFailure = { OutOfMemoryError("Failed to allocate a 48000012 byte allocation") })
        val (p, f) = policy(Accelerator.GPU, Accelerator.GPU to gpu)
        try {
            run(p)
            fail("OutOfMemoryError swallowed")
        } catch (e: OutOfMemoryError) {
            // thrown to the caller (the executor guard shows it)
        }
        assertEquals(Backend(Accelerator.GPU, Accelerator.GPU), p.backend)
        assertEquals(1, f.built.size)
    }

    @Test fun aFailingCpuEngineIsThrownNotHidden() {
        val cpu = Behaviour(failFromRun = 1, runFailure = { IllegalArgumentException("Internal error: Failed to run on the given Interpreter: bad model") })
        val (p, _) = policy(Accelerator.CPU, Accelerator.CPU to cpu)
        try {
            run(p)
            fail("CPU failure swallowed")
        } catch (e: IllegalArgumentException) {
            assertTrue(e.message!!.contains("bad model"))
        }
        // After a delegate failure, the CPU that replaces it fails too: thrown as well.
        val (p2, _) = policy(Accelerator.GPU, Accelerator.GPU to Behaviour(failFromRun = 1, runFailure = { IllegalArgumentException(runFailure) }),
            Accelerator.CPU to cpu)
        try {
            run(p2)
            fail("CPU failure after fallback swallowed")
        } catch (e: IllegalArgumentException) {
            assertTrue(e.message!!.contains("bad model"))
        }
        assertEquals(Accelerator.CPU, p2.backend.active)
    }

    @Test fun nnapiThatTakesNoNodeIsReportedAsCpu() {
        // No accelerator: XNNPACK runs the whole graph in both interpreters, same output, same time.
        val (p, f) = policy(Accelerator.NNAPI, Accelerator.NNAPI to Behaviour(ms = 10), Accelerator.CPU to Behaviour(ms = 10))
        assertEquals("NNAPI requested; the device decides (comparing with CPU…)", p.backend.describe)
        assertArrayEquals(cpuOutput(), run(p))
        assertEquals("NNAPI (no accelerator found: ran on CPU)", p.backend.describe)
        assertEquals(Accelerator.NNAPI, p.backend.active)
        val (nnapiEngine, probe) = f.built
        assertSame(nnapiEngine, p.engine)
        assertTrue("the CPU engine of the comparison is closed", probe.closed)
        assertEquals(1 + 5, nnapiEngine.runs)
        assertEquals(1 + 5, probe.runs) // one warm-up, five timed
        run(p)
        assertEquals("compared once", 2, f.built.size)
    }

    @Test fun nnapiWithDifferentOutputOrTimeIsReportedAsMeasuredNeverAsAccelerator() {
        val (p, _) = policy(Accelerator.NNAPI, Accelerator.NNAPI to Behaviour(ms = 2, bias = 1), Accelerator.CPU to Behaviour(ms = 10))
        run(p)
        assertEquals("NNAPI requested; the device decides (2.0 ms vs CPU 10.0 ms, output differs)", p.backend.describe)
        val check = p.backend.nnapi!!
        assertFalse(check.ranOnCpu)
        // Same output but clearly slower: not "ran on CPU" either.
        val (p2, _) = policy(Accelerator.NNAPI, Accelerator.NNAPI to Behaviour(ms = 15), Accelerator.CPU to Behaviour(ms = 10))
        run(p2)
        assertEquals("NNAPI requested; the device decides (15.0 ms vs CPU 10.0 ms, output identical)", p2.backend.describe)
        // Within the tolerance: the same.
        assertTrue(NnapiCheck(11.0, 10.0, true).ranOnCpu)
        assertFalse(NnapiCheck(11.0, 10.0, false).ranOnCpu)
        assertFalse(NnapiCheck(12.0, 10.0, true).ranOnCpu)
    }

    @Test fun nnapiFailingDuringTheComparisonFallsBackOnTheComparisonsCpuEngine() {
        val nnapi = Behaviour(failFromRun = 3, runFailure = { IllegalArgumentException(runFailure) })
        val (p, f) = policy(Accelerator.NNAPI, Accelerator.NNAPI to nnapi)
        assertArrayEquals(cpuOutput(), run(p))
        assertTrue(p.backend.describe, p.backend.describe.startsWith("CPU (fallback from NNAPI: failed at run 3: Internal error: Failed to run"))
        val (nnapiEngine, cpu) = f.built
        assertTrue(nnapiEngine.closed)
        assertSame(cpu, p.engine)
        assertFalse(cpu.closed)
        assertArrayEquals(cpuOutput(), run(p))
    }

    @Test fun whenTheComparisonsCpuEngineCannotBeBuiltTheLabelSaysSo() {
        val (p, _) = policy(Accelerator.NNAPI, Accelerator.CPU to Behaviour(createFailure = IllegalStateException("no memory for a second interpreter")))
        run(p)
        assertEquals("NNAPI requested; the device decides (no CPU comparison: no memory for a second interpreter)", p.backend.describe)
        assertEquals(Accelerator.NNAPI, p.backend.active)
    }
}
