package com.efficientnetedge.demo

import android.content.ContentResolver
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.net.Uri
import androidx.exifinterface.media.ExifInterface
import com.efficientnetedge.core.DraftDecode
import com.efficientnetedge.core.ImageFormatException
import com.efficientnetedge.core.Orientation
import com.efficientnetedge.core.RgbImage

/** A picked photo, upright (EXIF orientation applied), as pixels for the model and a bitmap for the screen. */
class Photo(val upright: RgbImage, val bitmap: Bitmap, val exifOrientation: Int)

object PhotoLoader {
    /**
     * Decode [uri] to ARGB_8888, apply its EXIF orientation exactly as Pillow's `exif_transpose`.
     * Large photos are decoded at 1/2, 1/4 or 1/8 scale (`inSampleSize`, [DraftDecode.sampleSize]: the
     * SDK's `preprocess(draft=True)` rule) while the short side stays ≥ [minShortSide], before the
     * model's crop: a 12 MP photo then takes ~3 MB instead of ~48 MB. The SDK drafts only JPEGs; here
     * every format is sampled (HEIC, PNG, WebP photos are as large).
     */
    fun load(resolver: ContentResolver, uri: Uri, minShortSide: Int): Photo {
        val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
        resolver.openInputStream(uri).use { BitmapFactory.decodeStream(it, null, bounds) }
        if (bounds.outWidth <= 0 || bounds.outHeight <= 0) throw ImageFormatException("not an image: $uri")
        val options = BitmapFactory.Options().apply {
            inSampleSize = DraftDecode.sampleSize(bounds.outWidth, bounds.outHeight, minShortSide)
            inPreferredConfig = Bitmap.Config.ARGB_8888
        }
        val bitmap = resolver.openInputStream(uri).use { BitmapFactory.decodeStream(it, null, options) }
            ?: throw ImageFormatException("cannot decode $uri")
        val orientation = resolver.openInputStream(uri).use { stream ->
            if (stream == null) ExifInterface.ORIENTATION_NORMAL
            else ExifInterface(stream).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)
        }
        val argb = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(argb, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        val upright = Orientation.applyExif(RgbImage.fromArgb(argb, bitmap.width, bitmap.height), orientation)
        bitmap.recycle()
        val shown = Bitmap.createBitmap(upright.toArgb(), upright.width, upright.height, Bitmap.Config.ARGB_8888)
        return Photo(upright, shown, orientation)
    }
}
