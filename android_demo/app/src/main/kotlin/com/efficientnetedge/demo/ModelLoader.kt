package com.efficientnetedge.demo

import android.content.Context
import com.efficientnetedge.core.ModelPackage
import java.io.FileInputStream
import java.io.FileNotFoundException
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

/** The model asset, memory-mapped, with the metadata read from it. */
class LoadedModel(val buffer: MappedByteBuffer, val pkg: ModelPackage)

/** The .tflite is missing from the APK's assets. */
class ModelMissingException(message: String, cause: Throwable? = null) : Exception(message, cause)

object ModelLoader {
    const val ASSET = "model.tflite"

    /**
     * Map `assets/model.tflite` (stored uncompressed thanks to `noCompress += "tflite"`) and read its
     * efficientnet-edge metadata and labels. Throws [ModelMissingException] or an EdgeException.
     */
    fun load(context: Context, asset: String = ASSET): LoadedModel {
        val fd = try {
            context.assets.openFd(asset)
        } catch (e: FileNotFoundException) {
            throw ModelMissingException(
                "No $asset in the app's assets. Create it with:\n" +
                    "efficientnet-convert --model lite0 --int8 --android-assets android_demo/app/src/main/assets\n" +
                    "then rebuild the app.", e
            )
        }
        val mapped = fd.use { afd ->
            FileInputStream(afd.fileDescriptor).use { stream ->
                stream.channel.map(FileChannel.MapMode.READ_ONLY, afd.startOffset, afd.declaredLength)
            }
        }
        return LoadedModel(mapped, ModelPackage.fromModel(mapped))
    }
}
