#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 20) from its committed corpus
# (crates/*/fuzz/corpus/<target>.tar.gz, minimized with `cargo fuzz cmin`), unpacked into
# a scratch folder so the repository stays as it is. A crash fails the run and leaves its
# input under crates/<crate>/fuzz/artifacts/. Prints one line per target: executions
# and crashes. Stable Rust: no sanitizer. With KEEP_CORPUS=1 the grown corpus is
# minimized and packed back into the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
targets=${FUZZ_TARGETS:-"gateway:jsonrpc_http_body gateway:jsonrpc_stdio_lines gateway:sse_messages
gateway:config_file policy:policy_file clients:client_config"}
root=$PWD
for spec in $targets; do
  crate=${spec%%:*}
  target=${spec##*:}
  work=$(mktemp -d)
  tar -xzf "crates/$crate/fuzz/corpus/$target.tar.gz" -C "$work"
  log="$work.log"
  (cd "crates/$crate/fuzz" && cargo fuzz run --sanitizer none --codegen-units 16 --target-dir "$root/target/fuzz" \
     "$target" "$work" -- -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048) >"$log" 2>&1 || {
    tail -40 "$log"; echo "fuzz target $target FAILED (input saved under crates/$crate/fuzz/artifacts/$target)"; exit 1; }
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
  printf '%-22s %12s executions in %ss, 0 crashes\n' "$target" "$runs" "$seconds"
  if [ "${KEEP_CORPUS:-0}" = 1 ]; then
    (cd "crates/$crate/fuzz" && cargo fuzz cmin --sanitizer none --codegen-units 16 --target-dir "$root/target/fuzz" \
       "$target" "$work" >/dev/null 2>&1)
    tar -czf "crates/$crate/fuzz/corpus/$target.tar.gz" -C "$work" .
  fi
  rm -rf "$work" "$log"
done
