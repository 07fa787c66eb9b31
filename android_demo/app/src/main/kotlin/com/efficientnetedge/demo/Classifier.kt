package com.efficientnetedge.demo

import android.os.Build
import android.os.SystemClock
import com.efficientnetedge.core.ElementType
import com.efficientnetedge.core.ImagePipeline
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
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** One classification: top labels and where the time went. */
data class Classification(
    val top: List<Labelled>,
    val preprocessMs: Double,
    val inferenceMs: Double,
)

data class Labelled(val index: Int, val label: String, val score: Float)

/**
 * LiteRT Interpreter + the SDK's preprocessing for one model and one backend.
 *
 * Not thread-safe, and the GPU delegate must be used on the thread that created it: create, use and
 * close an instance on one single-threaded executor.
 */
class Classifier private constructor(
    private val interpreter: Interpreter,
    private val delegate: Delegate?,
    val backend: Backend,
    private val model: LoadedModel,
) : Closeable {
    private val info = model.pkg.info
    private val pipeline = ImagePipeline(info.spec)
    private val inputBuffer: ByteBuffer
    private val outputBuffer: ByteBuffer
    private val encoder: InputEncoder
    private val outType: ElementType
    private val outQuant: Quantization
    private val classes: Int

    /** A mismatch worth showing (e.g. label count), or null. */
    val warning: String?

    init {
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
    }

    /** A camera frame, rotated clockwise by [rotationDegrees] to be upright. */
    fun classifyFrame(frame: RgbImage, rotationDegrees: Int, topK: Int = 3): Classification {
        val t0 = SystemClock.elapsedRealtimeNanos()
        val pixels = pipeline.fromCamera(frame, rotationDegrees)
        return run(pixels, t0, topK)
    }

    /** An already upright photo (EXIF applied). */
    fun classifyPhoto(upright: RgbImage, topK: Int = 3): Classification {
        val t0 = SystemClock.elapsedRealtimeNanos()
        return run(pipeline.cropAndResize(upright), t0, topK)
    }

    private fun run(pixels: RgbImage, t0: Long, topK: Int): Classification {
        inputBuffer.clear()
        encoder.encode(pixels, inputBuffer)
        inputBuffer.rewind()
        outputBuffer.clear()
        val t1 = SystemClock.elapsedRealtimeNanos()
        interpreter.run(inputBuffer, outputBuffer)
        val t2 = SystemClock.elapsedRealtimeNanos()
        val errno = (delegate as? NnApiDelegate)?.nnapiErrno ?: 0
        if (errno != 0) throw DelegateUnavailableException("NNAPI failed during inference (errno $errno)")
        outputBuffer.rewind()
        val real = Scores.dequantize(outputBuffer, outType, outQuant, classes)
        val scores = if (info.output == OutputKind.LOGITS) Scores.softmax(real) else real
        val labels = model.pkg.labels
        val top = Scores.topK(scores, topK).map { Labelled(it.index, labels.nameOf(it.index), it.score) }
        return Classification(top, (t1 - t0) / 1e6, (t2 - t1) / 1e6)
    }

    override fun close() {
        interpreter.close()
        (delegate as? AutoCloseable)?.close()
    }

    companion object {
        private const val CPU_THREADS = 4

        /**
         * Build for [requested]; if that delegate cannot load or apply here, build for CPU and say why in
         * [Backend.fallbackReason]. Errors of the model itself (bad shapes, metadata) are thrown.
         */
        fun create(model: LoadedModel, requested: Accelerator): Classifier {
            if (requested == Accelerator.CPU) return build(model, requested, Accelerator.CPU, null)
            return try {
                build(model, requested, requested, null)
            } catch (e: DelegateUnavailableException) {
                build(model, requested, Accelerator.CPU, e.message)
            }
        }

        /** CPU after [requested] failed at run time (e.g. an NNAPI error on the first inference). */
        fun cpuFallback(model: LoadedModel, requested: Accelerator, reason: String): Classifier =
            build(model, requested, Accelerator.CPU, reason)

        private fun build(model: LoadedModel, requested: Accelerator, active: Accelerator, reason: String?): Classifier {
            val options = Interpreter.Options().setNumThreads(CPU_THREADS)
            val delegate: Delegate? = when (active) {
                Accelerator.CPU -> { options.setUseXNNPACK(true); null }
                Accelerator.GPU -> gpuDelegate()
                Accelerator.NNAPI -> nnapiDelegate()
            }
            delegate?.let { options.addDelegate(it) }
            val interpreter = try {
                Interpreter(model.buffer, options)
            } catch (e: Exception) {
                (delegate as? AutoCloseable)?.close()
                // "Failed to apply delegate" and friends: the delegate loaded but cannot run this model.
                if (delegate != null) throw DelegateUnavailableException(e.message ?: e.toString(), e)
                throw e
            }
            return try {
                Classifier(interpreter, delegate, Backend(requested, active, reason), model)
            } catch (e: Exception) {
                interpreter.close()
                (delegate as? AutoCloseable)?.close()
                throw e
            }
        }

        private fun gpuDelegate(): Delegate = try {
            CompatibilityList().use { compat ->
                if (!compat.isDelegateSupportedOnThisDevice) {
                    throw DelegateUnavailableException("this GPU is not on LiteRT's GPU compatibility list")
                }
                GpuDelegate(compat.bestOptionsForThisDevice)
            }
        } catch (e: DelegateUnavailableException) {
            throw e
        } catch (e: Exception) {
            throw DelegateUnavailableException("GPU delegate failed to load (${e.message})", e)
        } catch (e: LinkageError) { // missing native library or class in this build
            throw DelegateUnavailableException("GPU delegate library missing (${e.message})", e)
        }

        private fun nnapiDelegate(): Delegate {
            if (Build.VERSION.SDK_INT < Build.VERSION_CODES.O_MR1) {
                throw DelegateUnavailableException("NNAPI needs Android 8.1 or newer")
            }
            return try {
                NnApiDelegate(NnApiDelegate.Options().apply {
                    // Never the slow NNAPI reference CPU: if no accelerator takes the ops, LiteRT's CPU does.
                    setUseNnapiCpu(false)
                    setExecutionPreference(NnApiDelegate.Options.EXECUTION_PREFERENCE_SUSTAINED_SPEED)
                })
            } catch (e: Exception) {
                throw DelegateUnavailableException("NNAPI delegate failed to load (${e.message})", e)
            } catch (e: LinkageError) {
                throw DelegateUnavailableException("NNAPI delegate library missing (${e.message})", e)
            }
        }

        private fun Tensor.elementType(): ElementType = when (dataType()) {
            DataType.FLOAT32 -> ElementType.FLOAT32
            DataType.UINT8 -> ElementType.UINT8
            DataType.INT8 -> ElementType.INT8
            else -> throw TensorFormatException("unsupported tensor type ${dataType()} for ${name()}")
        }

        private fun Tensor.quant(): Quantization =
            quantizationParams().let { Quantization(it.scale, it.zeroPoint) }
    }
}
