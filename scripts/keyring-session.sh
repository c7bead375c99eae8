#!/usr/bin/env bash
# Runs a command inside a private D-Bus session whose Secret Service is a gnome-keyring
# daemon, unlocked with a throwaway password, in private XDG data and runtime folders: the
# real keychain the vault's tests and the end-to-end tests use. Inside, the variable
# COUNTERSIGN_KEYRING_PASSWORD names that password (for tests that lock and unlock it).
# Usage: scripts/keyring-session.sh COMMAND [ARGS...]
set -euo pipefail
root="$(mktemp -d /tmp/countersign-keyring.XXXXXX)"
export XDG_DATA_HOME="$root/data" XDG_RUNTIME_DIR="$root/run"
mkdir -p "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$root" "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR"
export COUNTERSIGN_KEYRING_PASSWORD="countersign-test-$RANDOM$RANDOM"
here="$(cd "$(dirname "$0")" && pwd)"
export COUNTERSIGN_WAIT_FOR_BUS_NAME="$here/wait-for-bus-name.sh"
# A keyring that does not come up stops the run here, saying so (the tests would fail
# later with less clear errors).
exec dbus-run-session -- bash -c '
  printf %s "$COUNTERSIGN_KEYRING_PASSWORD" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
  "$COUNTERSIGN_WAIT_FOR_BUS_NAME" org.freedesktop.secrets || {
    echo "keyring-session: gnome-keyring did not take org.freedesktop.secrets; nothing was run" >&2
    exit 1
  }
  exec "$@"' bash "$@"
