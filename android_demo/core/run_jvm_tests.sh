#!/usr/bin/env bash
# Compile the pure-Kotlin core (main + test sources) with kotlinc and run its JUnit 4 tests. No Gradle.
#
#   bash android_demo/core/run_jvm_tests.sh
#
# Shared vectors: if EDGE_VECTORS_DIR is unset, they are generated into a temp dir with
# android_demo/tools/export_vectors.py when a Python with the SDK (`edge`) is available (PYTHON, the repo's
# .venv, or python3). EDGE_REQUIRE_VECTORS=1 makes their absence a failure instead of a skip.
# EDGE_VECTORS_TFLITE=model.tflite exports with that SDK-written model (export_vectors.py --tflite): Kotlin then
# reads its metadata and post-processes its real outputs (RealModelTest); EDGE_REQUIRE_MODEL=1 makes a
# missing model a failure instead of a skip. EDGE_KOTLIN_OUT=DIR keeps the pixels (NAME.input.u8) and
# encoded input tensors (NAME.input.enc) Kotlin produced, for tools/check_vectors.py.
# Last line of output is always "N passed, N failed"; exit status is non-zero on any failure.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/edge-core-tests.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

finish() { echo "$1 passed, $2 failed"; exit "$3"; }

if ! command -v kotlinc >/dev/null 2>&1 || [ ! -f /usr/share/java/junit4.jar ]; then
    echo "kotlinc or JUnit 4 missing: installing the Debian packages (kotlin, junit4)" >&2
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kotlin junit4) >&2 || true
    fi
    if ! command -v kotlinc >/dev/null 2>&1 || [ ! -f /usr/share/java/junit4.jar ]; then
        echo "ERROR: need kotlinc and /usr/share/java/junit4.jar (apt-get install kotlin junit4)" >&2
        finish 0 1 2
    fi
fi
KOTLIN_HOME_DIR="$(dirname "$(readlink -f "$(command -v kotlinc)")")/.."
STDLIB=""
for c in "$KOTLIN_HOME_DIR/lib/kotlin-stdlib.jar" /usr/share/java/kotlin-stdlib.jar; do
    [ -f "$c" ] && { STDLIB="$c"; break; }
done
HAMCREST=/usr/share/java/hamcrest-core.jar
[ -f "$HAMCREST" ] || HAMCREST=/usr/share/java/hamcrest.jar
CP_TEST="/usr/share/java/junit4.jar:$HAMCREST"

# The JVM warns about -Xverify:none under JDK 13+ (kotlinc 1.3's launcher): harmless, filtered.
quiet() { grep -v -e 'Xverify:none' -e 'noverify' || true; }

# kotlinc is a short-lived JVM: C1 only and the serial GC halve its CPU time (measured: 18 s vs 40 s user
# for core/src/main on this machine).
compile() { # compile <out dir> <classpath> <sources>
    kotlinc -J-XX:TieredStopAtLevel=1 -J-XX:+UseSerialGC -nowarn ${2:+-cp "$2"} "$3" -d "$1" > "$WORK/kotlinc.log" 2>&1
    local rc=$?
    quiet < "$WORK/kotlinc.log"
    [ "$rc" = 0 ] && [ -d "$1/com" ]
}
echo "== compiling core (main)"
compile "$WORK/main" "" "$HERE/src/main/kotlin" || { echo "ERROR: core main sources do not compile" >&2; finish 0 1 1; }
echo "== compiling core (test)"
compile "$WORK/test" "$WORK/main:$CP_TEST" "$HERE/src/test/kotlin" || { echo "ERROR: core test sources do not compile" >&2; finish 0 1 1; }

if [ -z "${EDGE_VECTORS_DIR:-}" ]; then
    PY="${PYTHON:-}"
    if [ -z "$PY" ]; then
        for c in "$REPO/.venv/bin/python" python3; do
            if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import edge.preprocess' >/dev/null 2>&1; then PY="$c"; break; fi
        done
    fi
    if [ -n "$PY" ]; then
        echo "== exporting shared vectors with $PY"
        if "$PY" "$REPO/android_demo/tools/export_vectors.py" --out "$WORK/vectors" ${EDGE_VECTORS_TFLITE:+--tflite "$EDGE_VECTORS_TFLITE"}; then
            export EDGE_VECTORS_DIR="$WORK/vectors"
        else
            echo "ERROR: export_vectors.py failed" >&2
            finish 0 1 1
        fi
    else
        echo "== no Python with the edge SDK: shared-vector tests will be skipped"
    fi
fi

# Test classes: every *Test.kt under src/test, named by its package + file name.
CLASSES=()
while IFS= read -r f; do
    pkg="$(sed -n 's/^package[[:space:]]\{1,\}\([A-Za-z0-9_.]*\).*/\1/p' "$f" | head -1)"
    CLASSES+=("${pkg:+$pkg.}$(basename "$f" .kt)")
done < <(find "$HERE/src/test/kotlin" -name '*Test.kt' | sort)

echo "== running ${#CLASSES[@]} test classes"
java -cp "$WORK/main:$WORK/test:$CP_TEST:$STDLIB" com.efficientnetedge.core.JvmTestRunner "${CLASSES[@]}" 2>&1 | tee "$WORK/run.log"
rc=${PIPESTATUS[0]}
last="$(tail -n 1 "$WORK/run.log")"
if ! printf '%s' "$last" | grep -Eq '^[0-9]+ passed, [0-9]+ failed$'; then
    finish 0 1 1   # the runner crashed before summarising
fi
exit "$rc"
