#!/usr/bin/env bash
# Runs a command inside a headless desktop session: an X server (Xvfb), a D-Bus session
# bus with an unlocked gnome-keyring (scripts/keyring-session.sh) and the dunst
# notification daemon, as the desktop app's end-to-end tests need.
# Usage: scripts/desktop-session.sh COMMAND [ARGS...]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d /tmp/countersign-xdg.XXXXXX)}"
chmod 700 "$XDG_RUNTIME_DIR"
display=":$((90 + RANDOM % 400))"
Xvfb "$display" -screen 0 1280x900x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
export DISPLAY="$display"
for _ in $(seq 100); do [ -e "/tmp/.X11-unix/X${display#:}" ] && break; sleep 0.05; done
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
cleanup() { kill "$xvfb" 2>/dev/null || true; }
trap cleanup EXIT
# dunst is started here with this config, and the script waits until it owns the
# notification name (asking dunstctl would make D-Bus start another dunst on its own).
exec "$here/scripts/keyring-session.sh" bash -c '
  dbus-update-activation-environment DISPLAY XDG_CONFIG_HOME XDG_RUNTIME_DIR >/dev/null 2>&1 || true
  dunst -config "$XDG_CONFIG_HOME/dunst/dunstrc" >"$XDG_RUNTIME_DIR/dunst.log" 2>&1 &
  "$COUNTERSIGN_WAIT_FOR_BUS_NAME" org.freedesktop.Notifications
  exec "$@"' bash "$@"
