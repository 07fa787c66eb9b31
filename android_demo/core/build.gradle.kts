// Pure Kotlin/JVM: pre/post-processing shared with the Python SDK, no Android imports.
// Also compiled and tested without Gradle by core/run_jvm_tests.sh (kotlinc 1.3 + JUnit 4).
import org.jetbrains.kotlin.gradle.tasks.KotlinCompile

plugins {
    id("org.jetbrains.kotlin.jvm")
}

java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

tasks.withType<KotlinCompile>().configureEach {
    kotlinOptions.jvmTarget = "17"
}

dependencies {
    testImplementation("junit:junit:4.13.2")
}

tasks.test {
    // Shared-vector tests read EDGE_VECTORS_DIR (tools/export_vectors.py); without it they are skipped.
    environment("EDGE_VECTORS_DIR", System.getenv("EDGE_VECTORS_DIR") ?: "")
    testLogging { events("passed", "skipped", "failed"); showStandardStreams = true }
}
