package com.efficientnetedge.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.fail
import org.junit.Test

class JsonTest {
    @Test fun parsesAllValueKinds() {
        val v = Json.parseObject("""{"a": [1, -2.5e1, 0.875], "b": {"c": null, "d": true, "e": false}, "s": "x\"\\\n\u00e9"}""")
        assertEquals(listOf(1.0, -25.0, 0.875), v["a"])
        val b = v["b"] as Map<*, *>
        assertNull(b["c"]); assertEquals(true, b["d"]); assertEquals(false, b["e"])
        assertEquals("x\"\\\n\u00e9", v["s"])
    }

    @Test fun numbersRoundTripPythonRepr() {
        // json.dumps(224/256) and a non-terminating fraction: the same double must come back.
        assertEquals(224.0 / 256.0, Json.parse("0.875") as Double, 0.0)
        assertEquals(300.0 / 332.0, Json.parse("0.9036144578313253") as Double, 0.0)
    }

    @Test fun malformedInputIsTyped() {
        for (bad in listOf("", "{", "{\"a\" 1}", "[1,]", "{\"a\":1} x", "01", "\"\\q\"", "tru", "{1:2}")) {
            try {
                Json.parse(bad)
                fail("accepted '$bad'")
            } catch (e: JsonException) {
                // expected
            }
        }
    }
}
