#!/usr/bin/env bash
# Waits (up to 10 s) until NAME is owned on the session D-Bus: a service started in the
# background is ready once it holds its name. Usage: scripts/wait-for-bus-name.sh NAME
for _ in $(seq 200); do
  dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.NameHasOwner "string:$1" 2>/dev/null | grep -q "boolean true" && exit 0
  sleep 0.05
done
echo "$1 did not appear on the session bus" >&2
exit 1
