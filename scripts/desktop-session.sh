#!/usr/bin/env bash
# Runs a command inside a headless desktop session: an X server (Xvfb), a D-Bus session
# bus with an unlocked gnome-keyring (scripts/keyring-session.sh) and the dunst
# notification daemon, as the desktop app's end-to-end tests need. When the command ends,
# everything started here ends with it, and the script exits with the command's status;
# if a part of the session does not come up, it says which and exits non-zero.
# Usage: scripts/desktop-session.sh COMMAND [ARGS...]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
made_runtime=""
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  XDG_RUNTIME_DIR="$(mktemp -d /tmp/countersign-xdg.XXXXXX)"
  made_runtime="$XDG_RUNTIME_DIR"
fi
export XDG_RUNTIME_DIR
chmod 700 "$XDG_RUNTIME_DIR"
xvfb=""
session=""
cleanup() {
  if [ -n "$session" ]; then
    kill -TERM -- "-$session" 2>/dev/null || true
    wait "$session" 2>/dev/null || true
  fi
  if [ -n "$xvfb" ]; then
    kill "$xvfb" 2>/dev/null || true
    wait "$xvfb" 2>/dev/null || true
  fi
  if [ -n "$made_runtime" ]; then rm -rf "$made_runtime"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
display=":$((90 + RANDOM % 400))"
Xvfb "$display" -screen 0 1280x900x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
export DISPLAY="$display"
for _ in $(seq 100); do
  [ -e "/tmp/.X11-unix/X${display#:}" ] && break
  kill -0 "$xvfb" 2>/dev/null || break
  sleep 0.05
done
if [ ! -e "/tmp/.X11-unix/X${display#:}" ] || ! kill -0 "$xvfb" 2>/dev/null; then
  echo "desktop-session: Xvfb did not start on display $display" >&2
  exit 1
fi
# dunst reads its config from here: actions are chosen through a dmenu stand-in that
# answers with whatever $COUNTERSIGN_TEST_CHOICE names (see tests/desktop).
export XDG_CONFIG_HOME="$XDG_RUNTIME_DIR/config"
mkdir -p "$XDG_CONFIG_HOME/dunst"
cat > "$XDG_CONFIG_HOME/dunst/dunstrc" <<CONF
[global]
    dmenu = $here/tests/desktop/dmenu_choice.sh
    show_indicators = no
    # as dunst's stock configuration (/etc/xdg/dunst/dunstrc): bodies are rendered as markup
    markup = full
[urgency_normal]
    timeout = 0
CONF
# dunst is started here with this config, and the script waits until it owns the
# notification name (asking dunstctl would make D-Bus start another dunst on its own).
# Not `exec`: the trap above must still run to stop Xvfb once the command ends. The
# session runs in a process group of its own, waited for in the background, so a signal
# to this script reaches the trap at once, and the trap ends the whole group (the
# command, dunst, the bus and the keyring). Its stdin is this script's.
setsid "$here/scripts/keyring-session.sh" bash -c '
  dbus-update-activation-environment DISPLAY XDG_CONFIG_HOME XDG_RUNTIME_DIR >/dev/null 2>&1 || true
  dunst -config "$XDG_CONFIG_HOME/dunst/dunstrc" >"$XDG_RUNTIME_DIR/dunst.log" 2>&1 &
  dunst=$!
  trap "kill $dunst 2>/dev/null || true" EXIT
  "$COUNTERSIGN_WAIT_FOR_BUS_NAME" org.freedesktop.Notifications || {
    echo "desktop-session: dunst did not take the notification name; its log:" >&2
    cat "$XDG_RUNTIME_DIR/dunst.log" >&2
    exit 1
  }
  "$@"' bash "$@" 0<&0 &
session=$!
status=0
wait "$session" || status=$?
session=""
exit "$status"
