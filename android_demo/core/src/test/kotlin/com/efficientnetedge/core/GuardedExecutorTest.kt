package com.efficientnetedge.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.util.Collections
import java.util.concurrent.CountDownLatch
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit

class GuardedExecutorTest {
    /** A single-thread executor whose threads report what escapes them (Android's handler kills the app). */
    private class Pool {
        val escaped: MutableList<Throwable> = Collections.synchronizedList(ArrayList<Throwable>())
        val service: ExecutorService = Executors.newSingleThreadExecutor { r ->
            Thread(r, "inference").apply { setUncaughtExceptionHandler { _, t -> escaped.add(t) } }
        }
    }

    private val failures = listOf<() -> Throwable>(
        { UnsatisfiedLinkError("dlopen failed: library \"libtensorflowlite_jni.so\" not found") },
        { OutOfMemoryError("Failed to allocate a 48000012 byte allocation with 25165824 free bytes") },
        { IllegalArgumentException("Internal error: Failed to run on the given Interpreter: bad") }
    )

    /** Runs the failing tasks then one that records its thread; returns the threads every task ran on. */
    private fun runAll(executor: java.util.concurrent.Executor, pool: Pool): List<Thread> {
        val threads: MutableList<Thread> = Collections.synchronizedList(ArrayList<Thread>())
        for (f in failures) executor.execute { threads.add(Thread.currentThread()); throw f() }
        val done = CountDownLatch(1)
        executor.execute { threads.add(Thread.currentThread()); done.countDown() }
        assertTrue("last task ran", done.await(10, TimeUnit.SECONDS))
        pool.service.shutdown()
        assertTrue(pool.service.awaitTermination(10, TimeUnit.SECONDS))
        // A dying worker calls its uncaught-exception handler after leaving the pool: wait for every thread.
        for (t in threads.toSet()) t.join(10_000)
        return threads
    }

    @Test fun everyThrowableIsReportedAndTheInferenceThreadSurvives() {
        val pool = Pool()
        val reported: MutableList<Throwable> = Collections.synchronizedList(ArrayList<Throwable>())
        val threads = runAll(GuardedExecutor(pool.service) { reported.add(it) }, pool)
        assertEquals(listOf("UnsatisfiedLinkError", "OutOfMemoryError", "IllegalArgumentException"), reported.map { it.javaClass.simpleName })
        assertEquals("nothing escaped to the thread's handler", 0, pool.escaped.size)
        assertEquals("all tasks on one thread (the GPU delegate's)", 1, threads.toSet().size)
    }

    /** The control: without the guard the same tasks escape and the worker thread is replaced each time. */
    @Test fun withoutTheGuardTheyEscape() {
        val pool = Pool()
        val threads = runAll(pool.service, pool)
        assertEquals(3, pool.escaped.size)
        assertEquals(4, threads.toSet().size)
    }

    @Test fun aFailingReporterAndAShutDownExecutorAreSurvivedToo() {
        val pool = Pool()
        val guarded = GuardedExecutor(pool.service) { throw IllegalStateException("the UI is gone") }
        val threads = runAll(guarded, pool)
        assertEquals(0, pool.escaped.size)
        assertEquals(1, threads.toSet().size)
        guarded.execute { throw AssertionError("must not run after shutdown") } // dropped, no RejectedExecutionException
    }

    @Test fun messagesForTheScreen() {
        assertEquals("A native library could not be loaded on this phone (dlopen failed: library \"libtensorflowlite_jni.so\" not found)",
            GuardedExecutor.describe(failures[0]()))
        assertEquals("Out of memory (Failed to allocate a 48000012 byte allocation with 25165824 free bytes): try a smaller photo or restart the app",
            GuardedExecutor.describe(failures[1]()))
        assertEquals("IllegalArgumentException: Internal error: Failed to run on the given Interpreter: bad",
            GuardedExecutor.describe(failures[2]()))
        assertEquals("A library class is missing from this build (NoClassDefFoundError: org/tensorflow/lite/gpu/GpuDelegateFactory\$Options)",
            GuardedExecutor.describe(NoClassDefFoundError("org/tensorflow/lite/gpu/GpuDelegateFactory\$Options")))
        assertEquals("model has no associated-files archive", GuardedExecutor.describe(ModelArchiveException("model has no associated-files archive\nmore")))
    }
}
