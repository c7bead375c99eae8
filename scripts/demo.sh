#!/usr/bin/env bash
# Starts the gateway with a demo configuration: the official filesystem server on a
# scratch folder and the memory server, with writes asking for approval.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
demo="$root/.demo"
mkdir -p "$demo/scratch"
[ -f "$demo/scratch/README.txt" ] || echo "A scratch folder the demo filesystem server can read and write." > "$demo/scratch/README.txt"
export COUNTERSIGN_HOME="${COUNTERSIGN_HOME:-$demo/home}"
bin="$root/target/debug/countersign"
cat > "$demo/countersign.toml" <<TOML
# Demo configuration written by \`make run\`.
[gateway]
listen = "127.0.0.1:${COUNTERSIGN_PORT:-47800}"
approval_timeout_secs = 60

[servers.filesystem]
command = "$root/fixtures/node_modules/.bin/mcp-server-filesystem"
args = ["$demo/scratch"]
trusted = true

[servers.memory]
command = "$root/fixtures/node_modules/.bin/mcp-server-memory"
env = { MEMORY_FILE_PATH = "$demo/memory.jsonl" }
trusted = true

[policy]
# The filesystem server marks its writes destructive; here they ask instead.
ask = ["mcp__filesystem__write_file", "mcp__filesystem__edit_file", "mcp__filesystem__create_directory", "mcp__memory"]
deny = ["mcp__filesystem__move_file"]
TOML
token_file="$demo/demo-client.token"
if [ ! -s "$token_file" ]; then
  "$bin" token revoke demo-client >/dev/null 2>&1 || true
  (umask 077; "$bin" token create demo-client > "$token_file")
fi
port="${COUNTERSIGN_PORT:-47800}"
cat <<MSG

Countersign demo
  config:   $demo/countersign.toml
  scratch:  $demo/scratch (the filesystem server's only folder)
  data:     $COUNTERSIGN_HOME

Point an MCP client at it:
  HTTP (Cursor, VS Code, Claude Code):  http://127.0.0.1:$port/mcp/filesystem
      header  Authorization: Bearer \$(cat $token_file)
  all servers at once:                   http://127.0.0.1:$port/mcp
  stdio (Claude Desktop):  command "$bin",
      args ["connect", "filesystem", "--home", "$COUNTERSIGN_HOME"]
  (or let \`countersign clients install\` write that entry into your clients' files)

While it runs, in another terminal (same COUNTERSIGN_HOME):
  $bin status            pending approvals, sessions
  $bin approve <id>      let a write through
  $bin audit export --format jsonl

MSG
exec "$bin" serve --config "$demo/countersign.toml"
