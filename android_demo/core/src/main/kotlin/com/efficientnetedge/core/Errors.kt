package com.efficientnetedge.core

/** Every error the core raises: callers can catch this one type and show [message] to a user. */
sealed class EdgeException(message: String, cause: Throwable? = null) : Exception(message, cause)

/** The .tflite bytes have no readable metadata archive, or an entry is missing/corrupt. */
class ModelArchiveException(message: String, cause: Throwable? = null) : EdgeException(message, cause)

/** `efficientnet_edge.json` (or the labels file) is not what this app understands. */
class MetadataException(message: String, cause: Throwable? = null) : EdgeException(message, cause)

/** Malformed JSON text; [offset] is the character position of the problem. */
class JsonException(message: String, val offset: Int) : EdgeException("$message at offset $offset")

/** A pixel buffer whose size, stride or rotation does not make sense. */
class ImageFormatException(message: String) : EdgeException(message)

/** A tensor type, shape or quantisation the app cannot feed or read. */
class TensorFormatException(message: String) : EdgeException(message)
