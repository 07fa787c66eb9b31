package com.efficientnetedge.core

import java.util.concurrent.Executor
import java.util.concurrent.RejectedExecutionException

/**
 * An executor whose every task runs inside one catch-all: whatever a task throws — an Exception, or an
 * Error such as `UnsatisfiedLinkError` (LiteRT's native library) or `OutOfMemoryError` (a huge photo) —
 * goes to [onError] instead of escaping. On Android an escaping Throwable reaches the default handler,
 * which kills the app; here the thread stays alive, so the next task still runs on it (which the GPU
 * delegate, bound to the thread that created it, needs). Tasks submitted after [executor] shut down are
 * dropped.
 */
class GuardedExecutor(private val executor: Executor, private val onError: (Throwable) -> Unit) : Executor {
    override fun execute(command: Runnable) {
        try {
            executor.execute {
                try {
                    command.run()
                } catch (t: Throwable) {
                    try {
                        onError(t)
                    } catch (ignored: Throwable) {
                        // Reporting failed too: nothing left to tell; keep the thread.
                    }
                }
            }
        } catch (e: RejectedExecutionException) {
            // Shut down (activity destroyed): nothing will run any more.
        }
    }

    companion object {
        /** One line for the screen saying what failed, in words a user can act on. */
        fun describe(t: Throwable): String {
            val detail = t.message?.lineSequence()?.map { it.trim() }?.firstOrNull { it.isNotEmpty() }
            return when (t) {
                is OutOfMemoryError -> "Out of memory${detail?.let { " ($it)" } ?: ""}: try a smaller photo or restart the app"
                is UnsatisfiedLinkError -> "A native library could not be loaded on this phone (${detail ?: "UnsatisfiedLinkError"})"
                is LinkageError -> "A library class is missing from this build (${t.javaClass.simpleName}: ${detail ?: "no details"})"
                is EdgeException -> detail ?: t.javaClass.simpleName
                else -> "${t.javaClass.simpleName}: ${detail ?: "no details"}"
            }
        }
    }
}
