"""Added time per PQexec round trip over a unix socket: starts a
PostgreSQL 15 server (as the postgres user, temporary directory), then runs
build/bench/dynobs-pq-bench alternately with dynobs on and with
OTEL_SDK_DISABLED=true, three times each, and prints the medians.

usage: python3 bench/pq_bench.py BUILD_DIR [--quick]
"""

import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.argv = [sys.argv[0], sys.argv[1], os.path.dirname(HERE)] + sys.argv[2:]
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
import test_exporter as tx  # noqa: E402
import test_libpq as tp  # noqa: E402

BENCH = os.path.join(tx.BUILD, "bench", "dynobs-pq-bench")


def main():
    quick = "--quick" in sys.argv
    env = tx.Env()
    try:
        pg = tp.Postgres(env)
        shm = tempfile.mkdtemp(prefix="dynobs-pqbench-")
        on, off = [], []
        for _ in range(3):
            for disabled in (False, True):
                e = dict(os.environ, DYNOBS_SHM_DIR=shm, DYNOBS_RING_BYTES="8M")
                if disabled:
                    e["OTEL_SDK_DISABLED"] = "true"
                r = subprocess.run([BENCH, pg.conninfo(unix=True), "50" if quick else "300"],
                                   env=e, capture_output=True, text=True, timeout=300, check=True)
                (off if disabled else on).append(float(r.stdout))
        a, b = statistics.median(off), statistics.median(on)
        print("%-52s %10s %10s %10s" % ("operation (median ns)", "disabled", "dynobs", "added"))
        print("%-52s %10.1f %10.1f %10.1f" % ("PQexec('SELECT 1') round trip, unix socket", a, b,
                                              b - a))
        pg.stop()
        subprocess.run(["rm", "-rf", shm])
    finally:
        env.close()


if __name__ == "__main__":
    main()
