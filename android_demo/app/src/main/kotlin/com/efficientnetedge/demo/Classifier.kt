package com.efficientnetedge.demo

import android.os.Build
import android.os.SystemClock
import com.efficientnetedge.core.Accelerator
import com.efficientnetedge.core.Backend
import com.efficientnetedge.core.DelegatePolicy
import com.efficientnetedge.core.ElementType
import com.efficientnetedge.core.EngineFactory
import com.efficientnetedge.core.ImagePipeline
import com.efficientnetedge.core.InferenceEngine
import com.efficientnetedge.core.InputEncoder
import com.efficientnetedge.core.OutputKind
import com.efficientnetedge.core.Quantization
import com.efficientnetedge.core.RgbImage
import com.efficientnetedge.core.Scores
import com.efficientnetedge.core.TensorFormatException
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Delegate
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import org.tensorflow.lite.nnapi.NnApiDelegate
import java.io.Closeable
import java.nio.Buffer
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** One classification: top labels, where the time went, and what ran it. */
data class Classification(
    val top: List<Labelled>,
    val preprocessMs: Double,
    val inferenceMs: Double,
    val backend: Backend,
    /** The backend changed during this run (a fallback, or NNAPI's comparison with the CPU): its time is not typical. */
    val backendChanged: Boolean,
)

data class Labelled(val index: Int, val label: String, val score: Float)

/** A delegate that cannot be created on this phone (the message says why). */
class DelegateUnavailableException(message: String, cause: Throwable? = null) : Exception(message, cause)

/** A LiteRT Interpreter and the delegate it was built with: what the core's [DelegatePolicy] runs. */
class LiteRtEngine(val interpreter: Interpreter, private val delegate: Delegate?) : InferenceEngine {
    override fun run(input: ByteBuffer, output: ByteBuffer) {
        // A delegate failing during invoke makes this throw IllegalArgumentException("Internal error:
        // Failed to run on the given Interpreter: …"); the policy then moves to the CPU.
        interpreter.run(input, output)
        val errno = (delegate as? NnApiDelegate)?.nnapiErrno ?: 0
        if (errno != 0) throw IllegalStateException("NNAPI reported error $errno during inference")
    }

    override fun close() {
        interpreter.close()
        (delegate as? AutoCloseable)?.close() // after the interpreter that uses it
    }
}

/**
 * Builds LiteRT interpreters for the memory-mapped model. XNNPACK is on in every one, so what a delegate
 * does not take runs on XNNPACK — and an NNAPI interpreter whose delegate takes nothing runs exactly like
 * the CPU one, which is what the policy's comparison detects.
 */
class LiteRtEngineFactory(private val model: ByteBuffer, private val threads: Int = 4) : EngineFactory<LiteRtEngine> {
    override fun create(accelerator: Accelerator): LiteRtEngine {
        val options = Interpreter.Options()
        options.setNumThreads(threads)
        options.setUseXNNPACK(true)
        val delegate: Delegate? = when (accelerator) {
            Accelerator.CPU -> null
            Accelerator.GPU -> gpuDelegate()
            Accelerator.NNAPI -> nnapiDelegate()
        }
        delegate?.let { options.addDelegate(it) }
        val interpreter = try {
            Interpreter(model, options) // "Internal error: Failed to apply delegate: …" when it cannot apply
        } catch (t: Throwable) {
            (delegate as? AutoCloseable)?.close()
            throw t
        }
        return LiteRtEngine(interpreter, delegate)
    }

    private fun gpuDelegate(): Delegate = CompatibilityList().use { compat ->
        if (!compat.isDelegateSupportedOnThisDevice) {
            throw DelegateUnavailableException("this GPU is not on LiteRT's GPU compatibility list")
        }
        GpuDelegate(compat.bestOptionsForThisDevice)
    }

    private fun nnapiDelegate(): Delegate {
        if (Build.VERSION.SDK_INT < Build.VERSION_CODES.O_MR1) {
            throw DelegateUnavailableException("NNAPI needs Android 8.1 or newer")
        }
        return NnApiDelegate(NnApiDelegate.Options().apply {
            // Never NNAPI's slow reference CPU: what no accelerator takes runs on XNNPACK.
            setUseNnapiCpu(false)
            setExecutionPreference(NnApiDelegate.Options.EXECUTION_PREFERENCE_SUSTAINED_SPEED)
        })
    }
}

/**
 * The SDK's preprocessing, a LiteRT interpreter chosen by the core's [DelegatePolicy] (the requested
 * delegate, or the CPU when it fails to load or to run) and the SDK's post-processing, for one model.
 *
 * Not thread-safe, and the GPU delegate must be used on the thread that created it: create, use and
 * close an instance on the one inference executor.
 */
class Classifier(private val model: LoadedModel, requested: Accelerator) : Closeable {
    private val policy = DelegatePolicy(LiteRtEngineFactory(model.buffer), requested)
    private val info = model.pkg.info
    private val pipeline = ImagePipeline(info.spec)
    private val inputBuffer: ByteBuffer
    private val outputBuffer: ByteBuffer
    private val encoder: InputEncoder
    private val outType: ElementType
    private val outQuant: Quantization
    private val classes: Int

    /** What runs now, and why. */
    val backend: Backend get() = policy.backend

    /** A mismatch worth showing (e.g. label count), or null. */
    val warning: String?

    init {
        try {
            // Every engine the policy builds runs the same model, so these tensors stay valid after a fallback.
            val interpreter = policy.engine.interpreter
            val input = interpreter.getInputTensor(0)
            val shape = input.shape()
            val size = info.spec.size
            if (!(shape.size == 4 && shape[0] == 1 && shape[1] == size && shape[2] == size && shape[3] == 3)) {
                throw TensorFormatException("model input is ${shape.contentToString()}, metadata says 1x${size}x${size}x3")
            }
            encoder = InputEncoder(input.elementType(), input.quant(), info.inputMean, info.inputStd)
            inputBuffer = ByteBuffer.allocateDirect(input.numBytes()).order(ByteOrder.nativeOrder())

            val output = interpreter.getOutputTensor(0)
            outType = output.elementType()
            outQuant = output.quant()
            classes = output.shape().last()
            outputBuffer = ByteBuffer.allocateDirect(output.numBytes()).order(ByteOrder.nativeOrder())
            val labels = model.pkg.labels.size
            warning = if (labels != 0 && labels != classes) "labels file has $labels names for $classes outputs" else null
        } catch (t: Throwable) {
            policy.close()
            throw t
        }
    }

    /** A camera frame, rotated clockwise by [rotationDegrees] to be upright. */
    fun classifyFrame(frame: RgbImage, rotationDegrees: Int, topK: Int = 3): Classification {
        val t0 = SystemClock.elapsedRealtimeNanos()
        return run(pipeline.fromCamera(frame, rotationDegrees), t0, topK)
    }

    /** An already upright photo (EXIF applied). */
    fun classifyPhoto(upright: RgbImage, topK: Int = 3): Classification {
        val t0 = SystemClock.elapsedRealtimeNanos()
        return run(pipeline.cropAndResize(upright), t0, topK)
    }

    private fun run(pixels: RgbImage, t0: Long, topK: Int): Classification {
        // Positions through Buffer: ByteBuffer's covariant clear()/rewind() are missing on older Android.
        (inputBuffer as Buffer).clear()
        encoder.encode(pixels, inputBuffer)
        (inputBuffer as Buffer).rewind()
        (outputBuffer as Buffer).clear()
        val before = policy.backend
        val t1 = SystemClock.elapsedRealtimeNanos()
        policy.run(inputBuffer, outputBuffer)
        val t2 = SystemClock.elapsedRealtimeNanos()
        val after = policy.backend
        (outputBuffer as Buffer).rewind()
        val real = Scores.dequantize(outputBuffer, outType, outQuant, classes)
        val scores = if (info.output == OutputKind.LOGITS) Scores.softmax(real) else real
        val labels = model.pkg.labels
        val top = Scores.topK(scores, topK).map { Labelled(it.index, labels.nameOf(it.index), it.score) }
        return Classification(top, (t1 - t0) / 1e6, (t2 - t1) / 1e6, after, after != before)
    }

    override fun close() = policy.close()

    private companion object {
        fun Tensor.elementType(): ElementType = when (dataType()) {
            DataType.FLOAT32 -> ElementType.FLOAT32
            DataType.UINT8 -> ElementType.UINT8
            DataType.INT8 -> ElementType.INT8
            else -> throw TensorFormatException("unsupported tensor type ${dataType()} for ${name()}")
        }

        fun Tensor.quant(): Quantization =
            quantizationParams().let { Quantization(it.scale, it.zeroPoint) }
    }
}
