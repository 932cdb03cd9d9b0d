#!/usr/bin/env bash
# Runs the original streamz's benchmarks and this project's scenarios in one go, on this
# machine, and prints a table of the figures and their ratios.
#
#   bash bench/compare.sh            # about 8 minutes on 2 cores (6 without tansu)
#   QUICK=1 bash bench/compare.sh    # smaller sizes, about 2 minutes
#   PEERS_ONLY=1 bash bench/compare.sh   # only the Rust peer table (no Python), about 2 minutes
#
# The original runs from a venv at $STREAMZ_PY_VENV (default bench/.venv, git-ignored), made
# on first use from bench/python/requirements.lock.txt. Results go to $OUT (default a new
# temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$(mktemp -d)}"
VENV="${STREAMZ_PY_VENV:-bench/.venv}"
mkdir -p "$OUT/python"

if [ -n "${QUICK:-}" ]; then PEER_N=200000; PEER_ROUNDS=3; else PEER_N=1000000; PEER_ROUNDS=7; fi
cargo build --release -q -p streamz-bench
peers() {
  echo ">>> streamz for Rust beside its Rust peers ($PEER_ROUNDS interleaved rounds)" >&2
  {
    echo "Rust peers, $(date -u +%Y-%m-%d), $(nproc) cores; medians of $PEER_ROUNDS interleaved rounds:"
    echo
    target/release/streamz-bench peers --n "$PEER_N" --rounds "$PEER_ROUNDS" --raw "$OUT/peers.jsonl"
  } > "$OUT/peers.md"
}
if [ -n "${PEERS_ONLY:-}" ]; then
  peers
  cat "$OUT/peers.md"
  echo "(raw figures in $OUT)" >&2
  exit 0
fi

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import streamz, confluent_kafka" 2>/dev/null; then
  echo ">>> installing the original into $VENV" >&2
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r bench/python/requirements.lock.txt
fi

if [ -n "${QUICK:-}" ]; then
  A="200000 1"; B="200000 1"; C="50000"; G="500"; H="3000 1000"; N_RUST=200000; N_KAFKA=20000
else
  A="1000000 3"; B="1000000 3"; C="200000"; G="2000"; H="30000 1000"; N_RUST=1000000; N_KAFKA=100000
fi

echo ">>> streamz for Rust" >&2
cargo build --release -q -p streamz-bench
RUN=target/release/streamz-bench
: > "$OUT/rust.jsonl"
for s in map1 map10 accumulate-filter limit; do "$RUN" "$s" --n "$N_RUST" --json >> "$OUT/rust.jsonl"; done
for s in async-emit rate-limit timed-window buffer rayon-offload memory-chain; do "$RUN" "$s" --json >> "$OUT/rust.jsonl"; done
# Kafka, both pipelines through one tansu broker the scenario starts (about 2 minutes); only
# where tansu is installed (cargo install --locked tansu@0.6.0 --features dynostore,libsql)
if command -v tansu > /dev/null || [ -n "${STREAMZ_TANSU:-}" ]; then
  echo ">>> Kafka: this crate and the original, through tansu" >&2
  "$RUN" kafka --n "$N_KAFKA" --python "$VENV/bin/python" --json >> "$OUT/rust.jsonl"
else
  echo ">>> no tansu: the Kafka rows are left out" >&2
fi

echo ">>> the original, streamz 0.6.6" >&2
run() {  # name, args...
  local name="$1"; shift
  echo "    $name $*" >&2
  (cd bench/python && timeout 300 "../../$VENV/bin/python" "$name.py" "$@") > "$OUT/python/$name.json" 2> "$OUT/python/$name.stderr.txt" || echo "    $name failed, see $OUT/python/$name.stderr.txt" >&2
}
run a_sync_map_throughput $A
run b_accumulate_filter $B
run c_async_tornado $C
run d_rate_limit 100 0.01
run e_timed_window 1.0 0.001 0.05
run f_buffer_backpressure 100 0.01
run g_dask $G
run h_memory_chain $H

peers

python3 bench/table.py "$OUT"
echo
cat "$OUT/peers.md"
echo "(raw figures in $OUT)" >&2
