package com.efficientnetedge.core

/**
 * A small, strict JSON reader (RFC 8259) so the core needs neither Android's org.json nor a library.
 * Objects become `Map<String, Any?>` (insertion-ordered), arrays `List<Any?>`, numbers `Double`,
 * plus `String`, `Boolean` and `null`.
 */
object Json {
    fun parse(text: String): Any? {
        val p = Parser(text)
        p.skipWs()
        val v = p.value()
        p.skipWs()
        if (p.pos != text.length) throw JsonException("trailing characters", p.pos)
        return v
    }

    /** Parse text that must be a JSON object. */
    fun parseObject(text: String): Map<String, Any?> {
        @Suppress("UNCHECKED_CAST")
        return parse(text) as? Map<String, Any?> ?: throw JsonException("expected a JSON object", 0)
    }

    private class Parser(val s: String) {
        var pos = 0

        fun skipWs() {
            while (pos < s.length && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' || s[pos] == '\r')) pos++
        }

        fun value(): Any? {
            if (pos >= s.length) throw JsonException("unexpected end of input", pos)
            return when (val c = s[pos]) {
                '{' -> obj()
                '[' -> array()
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> if (c == '-' || c in '0'..'9') number() else throw JsonException("unexpected '$c'", pos)
            }
        }

        private fun literal(word: String, v: Any?): Any? {
            if (!s.startsWith(word, pos)) throw JsonException("expected $word", pos)
            pos += word.length
            return v
        }

        private fun expect(c: Char) {
            if (pos >= s.length || s[pos] != c) throw JsonException("expected '$c'", pos)
            pos++
        }

        private fun obj(): Map<String, Any?> {
            expect('{')
            val out = LinkedHashMap<String, Any?>()
            skipWs()
            if (pos < s.length && s[pos] == '}') { pos++; return out }
            while (true) {
                skipWs()
                if (pos >= s.length || s[pos] != '"') throw JsonException("expected a string key", pos)
                val key = string()
                skipWs(); expect(':'); skipWs()
                out[key] = value()
                skipWs()
                if (pos < s.length && s[pos] == ',') { pos++; continue }
                expect('}')
                return out
            }
        }

        private fun array(): List<Any?> {
            expect('[')
            val out = ArrayList<Any?>()
            skipWs()
            if (pos < s.length && s[pos] == ']') { pos++; return out }
            while (true) {
                skipWs()
                out.add(value())
                skipWs()
                if (pos < s.length && s[pos] == ',') { pos++; continue }
                expect(']')
                return out
            }
        }

        private fun string(): String {
            expect('"')
            val sb = StringBuilder()
            while (true) {
                if (pos >= s.length) throw JsonException("unterminated string", pos)
                val c = s[pos++]
                when {
                    c == '"' -> return sb.toString()
                    c == '\\' -> {
                        if (pos >= s.length) throw JsonException("unterminated escape", pos)
                        when (val e = s[pos++]) {
                            '"', '\\', '/' -> sb.append(e)
                            'b' -> sb.append('\b')
                            'f' -> sb.append('\u000C')
                            'n' -> sb.append('\n')
                            'r' -> sb.append('\r')
                            't' -> sb.append('\t')
                            'u' -> {
                                if (pos + 4 > s.length) throw JsonException("short \\u escape", pos)
                                val code = s.substring(pos, pos + 4).toIntOrNull(16)
                                    ?: throw JsonException("bad \\u escape", pos)
                                sb.append(code.toChar())
                                pos += 4
                            }
                            else -> throw JsonException("bad escape '\\$e'", pos - 1)
                        }
                    }
                    c < ' ' -> throw JsonException("control character in string", pos - 1)
                    else -> sb.append(c)
                }
            }
        }

        private fun number(): Double {
            val start = pos
            if (s[pos] == '-') pos++
            if (pos < s.length && s[pos] == '0') pos++ else digits()
            if (pos < s.length && s[pos] == '.') { pos++; digits() }
            if (pos < s.length && (s[pos] == 'e' || s[pos] == 'E')) {
                pos++
                if (pos < s.length && (s[pos] == '+' || s[pos] == '-')) pos++
                digits()
            }
            return s.substring(start, pos).toDouble()
        }

        private fun digits() {
            val start = pos
            while (pos < s.length && s[pos] in '0'..'9') pos++
            if (pos == start) throw JsonException("expected a digit", pos)
        }
    }
}
