package com.efficientnetedge.core

import org.junit.runner.Description
import org.junit.runner.JUnitCore
import org.junit.runner.notification.Failure
import org.junit.runner.notification.RunListener
import kotlin.system.exitProcess

/** Runs the named JUnit 4 classes with JUnitCore; the last line printed is "N passed, N failed". */
object JvmTestRunner {
    @JvmStatic
    fun main(args: Array<String>) {
        val classes = args.map { Class.forName(it) }
        val core = JUnitCore()
        core.addListener(object : RunListener() {
            private var status = "ok  "
            override fun testStarted(description: Description) { status = "ok  " }
            override fun testFailure(failure: Failure) { status = "FAIL" }
            override fun testAssumptionFailure(failure: Failure) { status = "SKIP"; println("       (${failure.message})") }
            override fun testFinished(description: Description) = println("  $status ${description.displayName}")
        })
        val result = core.run(*classes.toTypedArray())
        for (f in result.failures) {
            println("--- ${f.description.displayName}")
            println(f.trace.lineSequence().take(15).joinToString("\n"))
        }
        val skipped = result.assumptionFailureCount + result.ignoreCount
        val passed = result.runCount - result.failureCount - result.assumptionFailureCount
        if (skipped > 0) println("$skipped skipped")
        println("$passed passed, ${result.failureCount} failed")
        exitProcess(if (result.failureCount == 0) 0 else 1)
    }
}
